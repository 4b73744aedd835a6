"""Inbound: the InboundEvent drain, applying Virtuous changes, polling, checkpoints, replay."""
