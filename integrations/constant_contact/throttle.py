"""One limiter for the whole Constant Contact application key, shared by every tenant.

Constant Contact counts 4 requests/s and 10,000 requests/day per *application* key, across all
connected accounts (spec section 3.4), so this is the one global limiter in the platform. It
reuses the Virtuous token buckets (``integrations.common.ratelimit``: a database row or a Redis
hash, whichever every worker sees) under two fixed application-wide keys:

- per second: capacity 1, refilling ``CONSTANT_CONTACT_REQUESTS_PER_SECOND`` a second, so any
  one-second window holds at most that rate plus one (3 + 1 = 4 by default);
- per day: capacity one hour's share, refilling ``CONSTANT_CONTACT_REQUESTS_PER_DAY / 24`` an
  hour, so one UTC day holds at most 25/24 of the setting (9,600 → 10,000 by default). The small
  capacity also keeps the Redis key's two-hour expiry harmless: an idle key would have refilled.

A 429 from Constant Contact pauses the matching bucket: ``throttled`` for a second,
``quota_exceeded`` until the quota resets at 00:00 UTC.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.conf import settings

from integrations.common.partners import PartnerThrottled
from integrations.common.ratelimit import BucketBackend, TenantBudget, default_backend

SECOND_KEY = "constant_contact:app:second"
DAY_KEY = "constant_contact:app:day"
MAX_WAIT_SECONDS = 5.0


class Throttled(PartnerThrottled):
    """The shared budget has no room soon enough; the caller stops and the next run goes on."""


class ApplicationThrottle:
    def __init__(
        self,
        *,
        backend: BucketBackend | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        backend = backend if backend is not None else default_backend()
        self.per_second = TenantBudget(
            SECOND_KEY,
            per_hour=settings.CONSTANT_CONTACT_REQUESTS_PER_SECOND * 3600,
            burst_seconds=0,
            backend=backend,
            clock=clock,
        )
        self.per_day = TenantBudget(
            DAY_KEY,
            per_hour=settings.CONSTANT_CONTACT_REQUESTS_PER_DAY // 24,
            burst_seconds=3600,
            backend=backend,
            clock=clock,
        )
        self.clock = clock
        self.sleep = sleep

    def acquire(self) -> None:
        """Take one request from both buckets, waiting up to ``MAX_WAIT_SECONDS`` in all."""
        waited = 0.0
        # The per-second bucket first: a token it grants and the day bucket then refuses is
        # one wasted second-slot, never a wasted day-slot.
        for budget in (self.per_second, self.per_day):
            while (wait := budget.try_acquire()) > 0:
                if waited + wait > MAX_WAIT_SECONDS:
                    raise Throttled(
                        f"Constant Contact application budget exhausted ({budget.key}); retry in {wait:.0f} s",
                        retry_in=wait,
                    )
                self.sleep(wait)
                waited += wait

    def rejected(self, error_key: str) -> None:
        """Constant Contact answered 429: hold every worker back as long as it asks."""
        now = self.clock()
        if error_key == "quota_exceeded":
            today = datetime.fromtimestamp(now, UTC).date()
            midnight = datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
            self.per_day.pause_until(midnight.timestamp())
        else:
            self.per_second.pause_until(now + 1.0)
