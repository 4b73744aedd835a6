"""The one retry policy: from an error's class and the attempts made, retry at T, dead letter or stop.

Every queue that retries (the submitter, the partner drain, the inbound drain) asks a
``RetryPolicy`` and applies the answer; none of them decides on its own.

| error class                        | attempts made < cap      | attempts made ≥ cap |
|------------------------------------|--------------------------|---------------------|
| transient                          | retry (full-jitter backoff) | dead letter      |
| not_found, conflict (context-dep.) | retry, cap ≤ 5           | dead letter         |
| permanent                          | dead letter              | dead letter         |
| rate_limited                       | stop until Retry-After (60 s if absent); no attempt spent |
| needs_attention (401)              | stop: the tenant is paused and alerted; no attempt spent  |

The backoff after the n-th failure is uniform in [0, min(cap, base·2^(n-1))] seconds.

``budget_wait`` is the one place that waits for the tenant's token bucket before giving up.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from django.conf import settings
from django.utils import timezone

from integrations.virtuous.errors import BudgetExhausted, ErrorClass
from tenants.models import Tenant

# Context-dependent statuses on a write (404 indexing lag, 409 concurrent change) get a few tries only.
CONTEXT_DEPENDENT_MAX_ATTEMPTS = 5
CONTEXT_DEPENDENT = frozenset({ErrorClass.NOT_FOUND, ErrorClass.CONFLICT})
RATE_LIMITED_DEFAULT_SECONDS = 60.0
# The inbound drain's documented defaults: events fail on our own bugs, not on a partner's limits.
INBOUND_RETRY_BASE_SECONDS = 5.0
INBOUND_RETRY_CAP_SECONDS = 600.0

T = TypeVar("T")


class Decision(StrEnum):
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"
    STOP = "stop"


@dataclass(frozen=True)
class Verdict:
    """What to do with a failed item: ``at`` is when to retry (RETRY) or resume (a rate-limit STOP)."""

    decision: Decision
    at: datetime | None = None
    exhausted: bool = False  # a dead letter because the attempts ran out (not a permanent error)


def backoff_delay(*, attempts: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``attempts``-th failure: uniform in [0, min(cap, base·2^(attempts-1))]."""
    ceiling = min(cap, base * (2 ** max(attempts - 1, 0)))
    return (rng or random).uniform(0, ceiling)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    cap_seconds: float
    context_dependent_max_attempts: int = CONTEXT_DEPENDENT_MAX_ATTEMPTS

    @classmethod
    def for_tenant(cls, tenant: Tenant) -> RetryPolicy:
        """The outbound queue's policy: the tenant's max attempts, base and cap."""
        return cls(
            max_attempts=tenant.retry_max_attempts,
            base_seconds=tenant.retry_base_seconds,
            cap_seconds=tenant.retry_cap_seconds,
        )

    @classmethod
    def inbound(cls) -> RetryPolicy:
        """The inbound queue's policy: ``INBOUND_MAX_ATTEMPTS``, 5 s base, 10 min cap."""
        return cls(
            max_attempts=settings.INBOUND_MAX_ATTEMPTS,
            base_seconds=INBOUND_RETRY_BASE_SECONDS,
            cap_seconds=INBOUND_RETRY_CAP_SECONDS,
        )

    def decide(
        self,
        error_class: str,
        attempts: int,
        *,
        retry_after: float | None = None,
        now: datetime | None = None,
    ) -> Verdict:
        """The verdict after a failure of ``error_class``; ``attempts`` counts this failed one."""
        now = now or timezone.now()
        if error_class == ErrorClass.RATE_LIMITED:
            seconds = retry_after or RATE_LIMITED_DEFAULT_SECONDS
            return Verdict(Decision.STOP, at=now + timedelta(seconds=seconds))
        if error_class == ErrorClass.NEEDS_ATTENTION:
            return Verdict(Decision.STOP)
        if error_class == ErrorClass.PERMANENT:
            return Verdict(Decision.DEAD_LETTER)
        cap = self.max_attempts
        if error_class in CONTEXT_DEPENDENT:
            cap = min(cap, self.context_dependent_max_attempts)
        if attempts >= cap:
            return Verdict(Decision.DEAD_LETTER, exhausted=True)
        return Verdict(Decision.RETRY, at=self.retry_at(attempts, now=now))

    def retry_at(self, attempts: int, *, now: datetime | None = None) -> datetime:
        delay = backoff_delay(attempts=attempts, base=self.base_seconds, cap=self.cap_seconds)
        return (now or timezone.now()) + timedelta(seconds=delay)


def budget_wait(
    call: Callable[[], T],
    *,
    max_wait: float,
    deadline: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    give_up: Callable[[], bool] | None = None,
) -> T:
    """``call()``, sleeping while the tenant's bucket is empty, for ``max_wait`` seconds in all.

    Gives up, re-raising the last ``BudgetExhausted`` (its ``retry_in`` says when to come back),
    when the next wait would pass ``max_wait`` or the ``deadline`` (a ``time.monotonic()`` value),
    or when ``give_up()`` says the thread is wanted elsewhere (other tenants wait for one).
    """
    waited = 0.0
    while True:
        try:
            return call()
        except BudgetExhausted as exc:
            if waited + exc.retry_in > max_wait:
                raise
            if deadline is not None and time.monotonic() + exc.retry_in >= deadline:
                raise
            if give_up is not None and give_up():
                raise
            sleep(exc.retry_in)
            waited += exc.retry_in
