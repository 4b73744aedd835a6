"""Two-way sync: per-record sync state, capture of partner-side changes, the partner drain, the mirror."""
