"""Backoff for transient failures: exponential with full jitter, bounded per tenant."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.utils import timezone

from tenants.models import Tenant


def backoff_delay(*, attempts: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``attempts``-th failure: uniform in [0, min(cap, base·2^(attempts-1))]."""
    ceiling = min(cap, base * (2 ** max(attempts - 1, 0)))
    return (rng or random).uniform(0, ceiling)


def next_attempt_time(*, tenant: Tenant, attempts: int, now: datetime | None = None) -> datetime:
    delay = backoff_delay(attempts=attempts, base=tenant.retry_base_seconds, cap=tenant.retry_cap_seconds)
    return (now or timezone.now()) + timedelta(seconds=delay)
