"""The one retry policy: error class × attempts made → retry at T, dead letter or stop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from integrations.virtuous.errors import BudgetExhausted, ErrorClass
from sync.outbound.retry import Decision, RetryPolicy, budget_wait

NOW = datetime(2025, 1, 1, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=8, base_seconds=10, cap_seconds=100)


@pytest.mark.parametrize(
    ("error_class", "attempts", "decision", "exhausted"),
    [
        (ErrorClass.TRANSIENT, 1, Decision.RETRY, False),
        (ErrorClass.TRANSIENT, 7, Decision.RETRY, False),
        (ErrorClass.TRANSIENT, 8, Decision.DEAD_LETTER, True),
        (ErrorClass.NOT_FOUND, 4, Decision.RETRY, False),
        (ErrorClass.NOT_FOUND, 5, Decision.DEAD_LETTER, True),
        (ErrorClass.CONFLICT, 5, Decision.DEAD_LETTER, True),
        (ErrorClass.PERMANENT, 1, Decision.DEAD_LETTER, False),
        (ErrorClass.NEEDS_ATTENTION, 1, Decision.STOP, False),
        (ErrorClass.RATE_LIMITED, 99, Decision.STOP, False),
    ],
)
def test_the_verdict_follows_the_table(error_class, attempts, decision, exhausted):
    verdict = POLICY.decide(error_class, attempts, now=NOW)
    assert (verdict.decision, verdict.exhausted) == (decision, exhausted)


def test_a_retry_waits_within_the_full_jitter_ceiling():
    for attempts, ceiling in ((1, 10), (3, 40), (6, 100)):
        verdict = POLICY.decide(ErrorClass.TRANSIENT, attempts, now=NOW)
        assert NOW <= verdict.at <= NOW + timedelta(seconds=ceiling)


def test_a_rate_limit_stops_until_retry_after_or_a_minute():
    assert POLICY.decide(ErrorClass.RATE_LIMITED, 1, retry_after=45, now=NOW).at == NOW + timedelta(
        seconds=45
    )
    assert POLICY.decide(ErrorClass.RATE_LIMITED, 1, now=NOW).at == NOW + timedelta(seconds=60)
    assert POLICY.decide(ErrorClass.NEEDS_ATTENTION, 1, now=NOW).at is None


def test_the_policy_comes_from_the_tenant_and_the_inbound_defaults(tenant, settings):
    settings.INBOUND_MAX_ATTEMPTS = 4
    assert RetryPolicy.for_tenant(tenant).max_attempts == tenant.retry_max_attempts
    assert RetryPolicy.inbound() == RetryPolicy(max_attempts=4, base_seconds=5.0, cap_seconds=600.0)


def test_budget_wait_sleeps_until_the_bucket_refills_then_gives_up_past_max_wait():
    slept: list[float] = []
    answers = iter([BudgetExhausted(2.0), BudgetExhausted(2.0), "ok"])

    def call():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert budget_wait(call, max_wait=4.0, sleep=slept.append) == "ok"
    assert slept == [2.0, 2.0]
    with pytest.raises(BudgetExhausted):
        budget_wait(lambda: (_ for _ in ()).throw(BudgetExhausted(3.0)), max_wait=2.0, sleep=slept.append)
    assert slept == [2.0, 2.0]
