"""Recording a 2xx: the one statement that writes the Attempt, the items' new state and their sync
records (PostgreSQL), and what happens when PostgreSQL cancels it."""

from __future__ import annotations

import psycopg
import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from integrations.virtuous.client import CallRecord
from sync.models import Attempt, OutboundItem
from sync.outbound import record
from sync.outbound.claim import outbound_claim
from tests.sync.conftest import enqueue_gifts

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement record is PostgreSQL's"),
]

CALL = CallRecord("POST", "/api/Gift/Transaction", 200, 12, "req-1", None, None, None)


class _CancelledFirst:
    """The real cursor, whose first ``execute`` PostgreSQL cancels with ``error`` (rolled back whole)."""

    def __init__(self, error: psycopg.Error, failures: list[int]) -> None:
        self.cursor, self.error, self.failures = connection.cursor(), error, failures

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.cursor.close()

    def execute(self, sql, params) -> None:
        if not self.failures:
            self.failures.append(1)
            raise OperationalError(str(self.error)) from self.error
        self.cursor.execute(sql, params)

    def fetchone(self):
        return self.cursor.fetchone()


def _claimed(tenant):
    enqueue_gifts(tenant, 1)
    return outbound_claim(tenant=tenant, worker="w1", limit=1)


def test_a_2xx_record_cancelled_by_a_deadlock_is_written_again(tenant, other_tenant, monkeypatch):
    group = _claimed(tenant)
    enqueue_gifts(other_tenant, 1)
    failures: list[int] = []
    deadlock = psycopg.errors.DeadlockDetected("deadlock detected")
    monkeypatch.setattr(record, "fixed_cursor", lambda db: _CancelledFirst(deadlock, failures))

    count = record.items_submitted_record(
        tenant, group, CALL, "gift_transaction", worker="w1", now=timezone.now()
    )

    assert failures == [1] and count == 1
    assert OutboundItem.objects.get(pk=group[0].pk).state == OutboundItem.State.SUBMITTED
    assert Attempt.objects.filter(tenant=tenant).count() == 1  # once, though the first try began it
    assert (
        not OutboundItem.objects.filter(tenant=other_tenant)
        .exclude(state=OutboundItem.State.PENDING)
        .exists()
    )


def test_any_other_failure_of_the_record_is_raised(tenant, monkeypatch):
    group = _claimed(tenant)
    cancelled = psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
    monkeypatch.setattr(record, "fixed_cursor", lambda db: _CancelledFirst(cancelled, []))

    with pytest.raises(OperationalError):
        record.items_submitted_record(
            tenant, group, CALL, "gift_transaction", worker="w1", now=timezone.now()
        )

    assert OutboundItem.objects.get(pk=group[0].pk).state == OutboundItem.State.IN_FLIGHT
    assert not Attempt.objects.filter(tenant=tenant).exists()
