"""Counters, the fixed-window rate limit and the fault knobs, safe across processes.

Every counter change is one ``UPDATE ... SET n = n + k``; every rate-limit hit is one
``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` on the organisation's window row, so two web
processes never lose an increment and never both see the same remaining budget.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from django.db import connection
from django.db.models import F
from django.utils import timezone

from integrations.sandbox.models import (
    COUNTER_FIELDS,
    SandboxCounters,
    SandboxOrganization,
    SandboxRateWindow,
)

_random = random.Random()


def counters_add(*, organization_id: int, **increments: int) -> None:
    """Add to the organisation's counters in one atomic UPDATE (zero increments are skipped)."""
    changes = {name: F(name) + n for name, n in increments.items() if n}
    unknown = set(changes) - set(COUNTER_FIELDS)
    if unknown:
        raise ValueError(f"Unknown sandbox counters: {sorted(unknown)}")
    if changes:
        SandboxCounters.objects.filter(pk=organization_id).update(**changes)


def counters_reset(*, organization: SandboxOrganization) -> None:
    SandboxCounters.objects.filter(pk=organization.pk).update(**dict.fromkeys(COUNTER_FIELDS, 0))


@dataclass(frozen=True)
class RateState:
    limit: int
    used: int
    reset_at: int  # Unix seconds when the window ends

    @property
    def allowed(self) -> bool:
        return self.used <= self.limit

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    def retry_after(self, now: float) -> int:
        return max(int(self.reset_at - now + 0.999), 1)

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }


def rate_hit(*, organization: SandboxOrganization, now: float | None = None) -> RateState:
    """Count one request in the current fixed window and report the budget left."""
    now = time.time() if now is None else now
    window = organization.window_seconds
    start = int(now // window) * window
    table = connection.ops.quote_name(SandboxRateWindow._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (organization_id, window_start, hits) VALUES (%s, %s, 1) "
            f"ON CONFLICT (organization_id, window_start) DO UPDATE SET hits = {table}.hits + 1 "
            "RETURNING hits",
            [organization.pk, start],
        )
        used = cursor.fetchone()[0]
    if used == 1:
        # First request of a new window: earlier windows are history, drop them.
        SandboxRateWindow.objects.filter(organization=organization, window_start__lt=start).delete()
    return RateState(limit=organization.rate_limit, used=used, reset_at=start + window)


def storm_active(*, organization: SandboxOrganization) -> bool:
    return organization.storm_until is not None and organization.storm_until > timezone.now()


def roll(rate: float) -> bool:
    """True with probability ``rate`` (0 never, 1 always)."""
    return rate > 0 and (rate >= 1 or _random.random() < rate)


def pick_error_status(*, organization: SandboxOrganization) -> int:
    statuses = organization.error_status_list or [500]
    return statuses[_random.randrange(len(statuses))]


def sleep(seconds: float) -> None:
    """Injected latency and timeouts; tests replace this to keep the suite fast."""
    if seconds > 0:
        time.sleep(seconds)
