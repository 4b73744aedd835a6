"""The kernel every provider shares: HTTP, value parsing, the token bucket, signatures, OAuth tokens, secrets."""
