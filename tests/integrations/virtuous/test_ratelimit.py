"""Token-bucket behaviour, identical on the database and Redis backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from integrations.common.ratelimit import DatabaseBackend, RedisBackend, TenantBudget, default_backend
from integrations.models import RateBucket

MARGIN = settings.VIRTUOUS_RATE_RESET_MARGIN_SECONDS


def _budget(backend, clock, *, key="t-1", per_hour=3600, burst=10, reserve=0.0, spread=0.0) -> TenantBudget:
    return TenantBudget(
        key,
        per_hour,
        reserve_fraction=reserve,
        burst_seconds=burst,
        spread_seconds=spread,
        backend=backend,
        clock=clock,
    )


def test_a_new_bucket_is_full_then_refills_at_the_hourly_rate(backend, clock):
    # given: 3600/h = 1 token/s, capacity 10
    budget = _budget(backend, clock)
    # when / then
    assert [budget.try_acquire() for _ in range(10)] == [0.0] * 10
    assert budget.try_acquire() == pytest.approx(1.0)
    clock.advance(2.5)
    assert budget.try_acquire() == 0.0
    assert budget.try_acquire() == 0.0
    assert budget.try_acquire() == pytest.approx(0.5)


def test_refill_never_exceeds_capacity(backend, clock):
    budget = _budget(backend, clock)
    budget.try_acquire(cost=4)
    clock.advance(3600)
    assert budget.snapshot()["tokens"] == 10.0
    assert budget.try_acquire(cost=10) == 0.0
    assert budget.try_acquire() == pytest.approx(1.0)


def test_keep_reserve_never_takes_the_last_share(backend, clock):
    # given: capacity 10, 30% reserved for live work
    budget = _budget(backend, clock, reserve=0.3)
    # when
    granted = sum(budget.try_acquire(keep_reserve=True) == 0.0 for _ in range(12))
    # then
    assert granted == 7
    assert budget.try_acquire(keep_reserve=True) == pytest.approx(1.0)
    assert [budget.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]


def test_keep_reserve_still_lets_one_request_through_a_one_token_bucket(backend, clock):
    budget = _budget(backend, clock, per_hour=60, burst=1, reserve=0.5)
    assert budget.capacity == 1.0
    assert budget.try_acquire(keep_reserve=True) == 0.0


def test_observe_holds_calls_to_what_virtuous_says_remains(backend, clock):
    budget = _budget(backend, clock)
    budget.observe(4, clock.now + 600)
    assert budget.snapshot()["tokens"] == 4.0
    assert budget.paused_for() == 0.0
    budget.observe(50, clock.now + 600)  # an earlier call's answer never raises the count
    assert budget.snapshot()["tokens"] == 4.0
    budget.observe(None, None)
    assert [budget.try_acquire() for _ in range(4)] == [0.0] * 4
    assert budget.try_acquire() == pytest.approx(600 + MARGIN)


def test_an_answer_without_a_reset_caps_the_tokens(backend, clock):
    budget = _budget(backend, clock)
    budget.observe(3, None)
    assert [budget.try_acquire() for _ in range(3)] == [0.0] * 3
    assert budget.try_acquire() == pytest.approx(1.0)


def test_an_answers_count_keeps_what_refilled_while_the_call_was_in_flight(backend, clock):
    # given: 1 token/s, capacity 10, all 10 spent; 2 s later the last answer says the window is
    # spent until its reset in 3 s
    budget = _budget(backend, clock)
    assert [budget.try_acquire() for _ in range(10)] == [0.0] * 10
    clock.advance(2)
    budget.observe(0, clock.now + 3)
    # when: the reset (plus the margin) comes
    clock.advance(3 + MARGIN)
    # then: the tokens of those 5 + MARGIN seconds are all there for the new window (an answer
    # that capped them at its count of 0 left only the 3 + MARGIN after it)
    tokens = 5 + MARGIN
    assert [budget.try_acquire() for _ in range(int(tokens))] == [0.0] * int(tokens)
    assert budget.try_acquire() == pytest.approx(int(tokens) + 1 - tokens)


def test_observe_zero_remaining_pauses_until_reset(backend, clock):
    budget = _budget(backend, clock)
    budget.observe(0, clock.now + 300)
    assert budget.paused_for() == 300.0 + MARGIN  # the reset is whole seconds on another clock
    assert budget.try_acquire() == 300.0 + MARGIN
    clock.advance(300)
    assert budget.try_acquire() == MARGIN
    clock.advance(MARGIN)
    assert budget.try_acquire() == 0.0


def test_refill_never_lets_a_call_past_what_the_window_has_left(backend, clock):
    # given: 1 token/s, capacity 10; Virtuous says one call is left in a window ending in 8 s
    budget = _budget(backend, clock)
    budget.observe(1, clock.now + 8)
    assert budget.try_acquire() == 0.0
    # when: the bucket refills 3 tokens, which Virtuous's fixed window does not
    clock.advance(3)
    # then: nothing more until the window's reset (plus the margin)
    assert budget.try_acquire() == pytest.approx(5 + MARGIN)
    assert budget.seconds_until(1) == pytest.approx(5 + MARGIN)
    assert budget.snapshot()["tokens"] == 0.0
    clock.advance(5 + MARGIN)
    assert budget.try_acquire() == 0.0


def test_a_window_is_spread_at_the_budgets_pace_and_used_whole(backend, clock):
    # given: 1 token/s, a bucket of 100; Virtuous says 60 calls remain in a window ending in 60 s
    budget = _budget(backend, clock, burst=100, spread=5)
    start = clock.now
    budget.observe(60, start + 60)
    end = start + 60 + MARGIN
    # when: a tenant with more work than budget calls whenever it is let
    granted = []
    while clock.now < end and len(granted) < 61:
        wait = budget.try_acquire()
        if wait == 0.0:
            granted.append(clock.now - start)
        else:
            clock.advance(wait)
    # then: at most 5 s of budget ahead of the even pace, never a gap much over one call's
    # worth, and the whole window spent before its end (the 61st call waits for the reset)
    assert len(granted) == 60
    assert all(at >= n - 5 - MARGIN for n, at in enumerate(granted))
    assert max(b - a for a, b in zip(granted, granted[1:], strict=False)) <= 1.0 + 1e-6
    assert sum(at < 10 for at in granted) <= 10 + 5


def test_spreading_never_slows_a_tenant_with_budget_to_spare(backend, clock):
    # given: 1 token/s, capacity 10; 5,000 left in an hour's window, far more than the pace needs
    budget = _budget(backend, clock, spread=5)
    budget.observe(5000, clock.now + 3600)
    # then: the bucket alone decides, as without a window
    assert [budget.try_acquire() for _ in range(10)] == [0.0] * 10
    assert budget.try_acquire() == pytest.approx(1.0)


def test_spreading_keeps_the_window_count(backend, clock):
    # given: one call left in a window ending in 8 s, spread on
    budget = _budget(backend, clock, spread=5)
    budget.observe(1, clock.now + 8)
    clock.advance(8 + MARGIN - 5)  # within the last 5 s: the pace no longer holds it back
    assert budget.try_acquire() == 0.0
    assert budget.try_acquire() == pytest.approx(5.0)  # the count is spent: the reset, as before


def test_answers_that_cross_keep_the_lower_count_and_a_stale_one_no_window(backend, clock):
    budget = _budget(backend, clock)
    reset = clock.now + 8
    budget.observe(2, reset)
    budget.observe(3, reset)  # an earlier request's answer, arriving later
    assert [budget.try_acquire() for _ in range(2)] == [0.0, 0.0]
    assert budget.try_acquire() == pytest.approx(8 + MARGIN)
    # a new window: its count replaces the old one; an answer from the old one changes nothing
    clock.advance(8 + MARGIN)
    budget.observe(4, reset + 10)
    budget.observe(5, reset)
    assert [budget.try_acquire() for _ in range(4)] == [0.0] * 4
    assert budget.try_acquire() == pytest.approx(10)


def test_pause_until_keeps_the_later_pause(backend, clock):
    budget = _budget(backend, clock)
    budget.pause_until(clock.now + 120)
    budget.pause_until(clock.now + 30)
    assert budget.paused_for() == 120.0
    assert budget.try_acquire() == 120.0
    assert budget.snapshot() == {
        "key": "t-1",
        "tokens": 10.0,
        "capacity": 10.0,
        "per_hour": 3600,
        "paused_until": datetime.fromtimestamp(clock.now + 120, UTC),
    }


def test_tenants_have_separate_buckets(backend, clock):
    alpha = _budget(backend, clock, key="alpha", burst=2)
    bravo = _budget(backend, clock, key="bravo", burst=2)
    alpha.try_acquire(cost=2)
    alpha.pause_until(clock.now + 600)
    assert bravo.try_acquire(cost=2) == 0.0
    assert bravo.paused_for() == 0.0


def test_a_budget_change_applies_to_the_existing_bucket(backend, clock):
    _budget(backend, clock, burst=10).try_acquire(cost=2)
    smaller = _budget(backend, clock, burst=5)
    assert smaller.snapshot()["tokens"] == 5.0
    assert smaller.try_acquire(cost=5) == 0.0


def test_zero_budget_never_grants(backend, clock):
    budget = _budget(backend, clock, per_hour=0)
    assert budget.try_acquire() == 0.0  # the single minimum token
    assert budget.try_acquire() == 3600.0


def test_database_backend_keeps_one_row_per_key(db, clock):
    _budget(DatabaseBackend(), clock, key="row-a").try_acquire()
    _budget(DatabaseBackend(), clock, key="row-a").try_acquire()
    _budget(DatabaseBackend(), clock, key="row-b").try_acquire()
    assert sorted(RateBucket.objects.values_list("key", "tokens")) == [("row-a", 8.0), ("row-b", 9.0)]


def test_default_backend_follows_the_setting(settings):
    settings.RATE_LIMIT_BACKEND = "database"
    assert isinstance(default_backend(), DatabaseBackend)
    settings.RATE_LIMIT_BACKEND = "auto"
    settings.REDIS_URL = ""
    assert isinstance(default_backend(), DatabaseBackend)
    settings.REDIS_URL = "redis://127.0.0.1:6379/5"
    assert isinstance(default_backend(), RedisBackend)
    settings.RATE_LIMIT_BACKEND = "redis"
    settings.REDIS_URL = ""
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL"):
        default_backend()


@pytest.mark.parametrize(("per_hour", "reserve"), [(-1, 0.0), (100, 1.0), (100, -0.1)])
def test_bad_budget_arguments_are_refused(per_hour, reserve):
    with pytest.raises(ValueError):
        TenantBudget("k", per_hour, reserve_fraction=reserve, backend=DatabaseBackend())


def test_capacity_defaults_to_the_burst_setting(settings):
    settings.VIRTUOUS_BUCKET_BURST_SECONDS = 60
    assert TenantBudget("k", 4500, backend=DatabaseBackend()).capacity == 75.0


def test_spread_defaults_to_its_setting(settings):
    settings.VIRTUOUS_WINDOW_SPREAD_SECONDS = 7.5
    assert TenantBudget("k", 4500, backend=DatabaseBackend()).shape.spread == 7.5
    settings.VIRTUOUS_WINDOW_SPREAD_SECONDS = -1
    assert TenantBudget("k", 4500, backend=DatabaseBackend()).shape.spread == 0.0


def test_seconds_until_several_tokens_takes_nothing(backend, clock):
    # given: 1 token/s, capacity 10, emptied
    budget = _budget(backend, clock, reserve=0.2)
    budget.try_acquire(cost=10)
    # when / then: the wait for 3 in a row, without taking any
    assert budget.seconds_until(3) == pytest.approx(3.0)
    clock.advance(3)
    assert budget.seconds_until(3) == 0.0 and budget.snapshot()["tokens"] == pytest.approx(3.0)
    assert budget.seconds_until(3, keep_reserve=True) == pytest.approx(2.0)  # bulk leaves 2 behind
    assert budget.seconds_until(50) == pytest.approx(7.0)  # never more than a full bucket
    budget.pause_until(clock() + 30)
    assert budget.seconds_until(1) == pytest.approx(30.0)


class _CountingBackend:
    """The real backend, counting the answers that reach it."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.observed = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def observe(self, *args, **kwargs) -> None:
        self.observed += 1
        self.inner.observe(*args, **kwargs)


def test_only_an_answer_that_can_change_the_window_reaches_the_backend(backend, clock):
    # given: 1 token/s; Virtuous's window holds 60 calls and ends in 60 s
    counting = _CountingBackend(backend)
    budget = _budget(counting, clock, burst=60)
    reset = clock.now + 60
    assert budget.try_acquire() == 0.0
    budget.observe(59, reset)  # the first answer of a window sets its count
    assert counting.observed == 1
    # when: each later call is answered with the count its take left
    for left in range(58, 50, -1):
        assert budget.try_acquire() == 0.0
        budget.observe(left, reset)
    # then: none of those answers could change anything, and none was sent
    assert counting.observed == 1
    # but a lower count (another app spent the organisation's budget), a zero, a new window and
    # an answer without a reset are all sent
    assert budget.try_acquire() == 0.0
    budget.observe(40, reset)
    budget.observe(0, reset)
    budget.observe(30, reset + 60)
    budget.observe(5, None)
    assert counting.observed == 5
    assert budget.paused_for() == pytest.approx(60 + MARGIN)
    assert budget.snapshot()["tokens"] == 5.0


@pytest.mark.parametrize("seed", range(4))
def test_skipping_answers_never_changes_what_the_bucket_grants(backend, clock, seed):
    """A budget that skips answers and one whose every answer reaches the backend, driven through
    the same calls and answers (out of order, some stale, some lower than the window's count),
    grant the same calls at the same times and end in the same window."""
    import random

    rng = random.Random(seed)
    skipping = _budget(backend, clock, key=f"skip-{seed}", burst=20)
    full = _budget(backend, clock, key=f"full-{seed}", burst=20)
    window, limit, served, in_flight = 10.0, 12, {}, []
    for _ in range(400):
        now = clock()
        if rng.random() < 0.5:
            waits = (skipping.try_acquire(), full.try_acquire())
            assert waits[0] == pytest.approx(waits[1], abs=1e-6)
            if waits[0] == 0.0:
                # Virtuous counts the call when it arrives, in whole-second fixed windows
                start = now - now % window
                served[start] = served.get(start, 0) + 1
                remaining = max(limit - served[start], 0)
                if rng.random() < 0.1:
                    remaining = rng.randint(0, limit)  # another app spent some of the window
                in_flight.append((remaining, start + window))
        elif in_flight:
            remaining, reset = in_flight.pop(rng.randrange(len(in_flight)))
            if rng.random() < 0.05:
                reset = None
            skipping.observe(remaining, reset)
            if reset is None:
                full.observe(remaining, None)
            else:
                backend.observe(full.key, full.shape, now=now, remaining=remaining, reset=reset + MARGIN)
        clock.advance(rng.choice([0.0, 0.1, 0.5, 1.0, 2.5]))
    ours, theirs = (backend.read(b.key, b.shape, now=clock()) for b in (skipping, full))
    assert ours.window_until == theirs.window_until and ours.window_left == theirs.window_left
    assert ours.paused_until == theirs.paused_until
    assert ours.tokens == pytest.approx(theirs.tokens, abs=1e-4)  # Redis keeps 14 digits a write
