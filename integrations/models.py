"""Integration state shared by every worker process."""

from __future__ import annotations

from django.db import models


class RateBucket(models.Model):
    """One tenant's Virtuous token bucket when ``RATE_LIMIT_BACKEND`` is the database.

    Capacity and refill rate are not stored: they come from the tenant's settings on every call,
    so a budget change applies at once. Only the moving parts live here, as Unix times because
    every worker does arithmetic on them under the row lock.
    """

    key = models.CharField(max_length=64, unique=True, help_text="The tenant's public id.")
    tokens = models.FloatField()
    refilled_at = models.FloatField(help_text="Unix time of the last refill.")
    paused_until = models.FloatField(default=0.0, help_text="Unix time; no calls before it.")

    def __str__(self) -> str:
        return f"{self.key}: {self.tokens:.1f} tokens"
