"""Outbound: enqueue, dispatch, the drain (the only writer to Virtuous), confirmation, dead letters, the retry policy."""
