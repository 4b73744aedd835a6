"""Issue 14 §3: the purge keeps storage bounded, in batches, and never deletes what is still needed."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations.models import InboundEvent, RejectedDeliveryCount
from integrations.services import connection_create
from sync.inbound.replay import inbound_events_replay
from sync.models import Attempt, AttemptItem, DeadLetter, Operation, OutboundItem
from sync.ops import retention
from sync.ops.retention import data_purge
from sync.schedules import declared_schedules
from tenants.models import AuditEvent, Tenant
from tenants.services import SYSTEM

NOW = timezone.now()
OLD = NOW - dt.timedelta(days=45)  # past the 30-day defaults, inside the 90-day dead-letter one
ANCIENT = NOW - dt.timedelta(days=120)
RECENT = NOW - dt.timedelta(days=2)


def _event(tenant, connection, status, when, body=b'{"id": "evt"}'):
    return InboundEvent.objects.create(
        tenant=tenant,
        connection=connection,
        provider=connection.provider,
        status=status,
        body=body,
        received_at=when,
    )


def _item(tenant, state, n):
    return OutboundItem.objects.create(
        tenant=tenant,
        operation=Operation.GIFT_TRANSACTION,
        idempotency_key=f"k-{state}-{n}",
        external_source="Stripe",
        external_id=f"ch_{state}_{n}",
        payload={"amount": "5.00"},
        state=state,
        origin="webhook",
    )


def _attempt(tenant, when, *items):
    attempt = Attempt.objects.create(
        tenant=tenant, method="POST", path="/api/v2/Gift/Transaction", created_at=when
    )
    for item in items:
        AttemptItem.objects.create(attempt=attempt, item=item)
    return attempt


def _dead_letter(tenant, resolution, resolved_at, created_at=None):
    letter = DeadLetter.objects.create(
        tenant=tenant,
        operation_type=Operation.GIFT_TRANSACTION,
        original_payload={},
        resolution=resolution,
        resolved_at=resolved_at,
    )
    if created_at:
        DeadLetter.objects.filter(pk=letter.pk).update(created_at=created_at)
    return letter


@pytest.fixture
def world(tenant, other_tenant):
    """For each tenant: events, rejected rows, counters, attempts and dead letters of every kind."""
    rows = {}
    for t in (tenant, other_tenant):
        c = connection_create(tenant=t, provider="stripe")
        S = InboundEvent.Status
        rows[t.slug] = {
            "old_processed": _event(t, c, S.PROCESSED, OLD),
            "old_ignored": _event(t, c, S.IGNORED, OLD),
            "old_duplicate": _event(t, c, S.DUPLICATE, OLD),
            "old_pending": _event(t, c, S.PENDING, OLD),
            "old_processing": _event(t, c, S.PROCESSING, OLD),
            "old_failed": _event(t, c, S.FAILED, OLD),
            "old_review": _event(t, c, S.NEEDS_REVIEW, OLD),
            "old_malformed": _event(t, c, S.MALFORMED, OLD),
            "new_processed": _event(t, c, S.PROCESSED, RECENT),
            "old_rejected": _event(t, c, S.REJECTED, OLD, body=b"prefix"),
            "new_rejected": _event(t, c, S.REJECTED, RECENT, body=b"prefix"),
        }
        RejectedDeliveryCount.objects.create(tenant=t, connection=c, minute=OLD, received=500, stored=30)
        RejectedDeliveryCount.objects.create(tenant=t, connection=c, minute=RECENT, received=5, stored=5)
        confirmed, discarded = _item(t, "confirmed", 1), _item(t, "discarded", 1)
        pending, submitted, dead = _item(t, "pending", 1), _item(t, "submitted", 1), _item(t, "dead", 1)
        rows[t.slug] |= {
            "attempt_finished": _attempt(t, OLD, confirmed, discarded),
            "attempt_no_item": _attempt(t, OLD),
            "attempt_pending": _attempt(t, OLD, pending),
            "attempt_submitted": _attempt(t, OLD, submitted),
            "attempt_mixed": _attempt(t, OLD, confirmed, dead),  # one live item keeps the whole attempt
            "attempt_recent": _attempt(t, RECENT, confirmed),
            "dead_open": _dead_letter(t, "open", None, created_at=ANCIENT),
            "dead_resolved_ancient": _dead_letter(t, "discarded", ANCIENT),
            "dead_resolved_old": _dead_letter(t, "replayed", OLD),
            "dead_legacy_no_resolved_at": _dead_letter(t, "fixed_and_replayed", None, created_at=ANCIENT),
        }
    return rows


def _exists(row) -> bool:
    return type(row).objects.filter(pk=row.pk).exists()


def _body(event) -> bytes:
    return bytes(InboundEvent.objects.get(pk=event.pk).body)


EXPECTED = {
    "webhook_bodies": 3,
    "rejected_deliveries": 1,
    "rejected_counts": 1,
    "attempts": 2,
    "dead_letters": 2,
}


def test_the_purge_removes_only_what_retention_allows(tenant, other_tenant, world):
    Tenant.objects.filter(pk=other_tenant.pk).update(
        retention_webhook_body_days=365, retention_attempt_days=365
    )
    result = data_purge(now=NOW)
    assert result.counts["alpha"] == EXPECTED
    mine = world["alpha"]
    # handled bodies older than 30 days are gone; the rows stay, with their hash and a purge time
    for name in ("old_processed", "old_ignored", "old_duplicate"):
        event = InboundEvent.objects.get(pk=mine[name].pk)
        assert bytes(event.body) == b"" and event.body_purged_at == NOW
    # bodies still needed stay whatever their age: not yet handled, or waiting for a person
    for name in (
        "old_pending",
        "old_processing",
        "old_failed",
        "old_review",
        "old_malformed",
        "new_processed",
    ):
        assert _body(mine[name]) == b'{"id": "evt"}', name
    assert not _exists(mine["old_rejected"]) and _exists(mine["new_rejected"])
    assert list(RejectedDeliveryCount.objects.filter(tenant=tenant).values_list("received", flat=True)) == [5]
    # attempts of finished items go; any live item keeps its attempt (and the link)
    assert not _exists(mine["attempt_finished"]) and not _exists(mine["attempt_no_item"])
    for name in ("attempt_pending", "attempt_submitted", "attempt_mixed", "attempt_recent"):
        assert _exists(mine[name]), name
    assert AttemptItem.objects.filter(attempt=mine["attempt_mixed"]).count() == 2
    # open dead letters never go; resolved ones after 90 days
    assert _exists(mine["dead_open"]) and _exists(mine["dead_resolved_old"])
    assert not _exists(mine["dead_resolved_ancient"]) and not _exists(mine["dead_legacy_no_resolved_at"])
    # the outsider's overrides keep its bodies, rejected rows and attempts; its dead letters follow the default
    theirs = world["bravo"]
    assert result.counts["bravo"] == {
        "webhook_bodies": 0,
        "rejected_deliveries": 0,
        "rejected_counts": 0,
        "attempts": 0,
        "dead_letters": 2,
    }
    assert _body(theirs["old_processed"]) == b'{"id": "evt"}' and _exists(theirs["attempt_finished"])
    # the items themselves are never purged
    assert OutboundItem.objects.count() == 10
    # every purge is audited per tenant
    audit = AuditEvent.objects.get(action="data.purged", tenant=tenant)
    assert audit.details["counts"] == EXPECTED
    assert audit.details["retention_days"] == {
        "webhook_body_days": 30,
        "attempt_days": 30,
        "dead_letter_days": 90,
    }


def test_a_dry_run_counts_exactly_what_the_run_does_and_changes_nothing(tenant, other_tenant, world):
    before = (InboundEvent.objects.count(), Attempt.objects.count(), DeadLetter.objects.count())
    dry = data_purge(now=NOW, dry_run=True)
    assert (InboundEvent.objects.count(), Attempt.objects.count(), DeadLetter.objects.count()) == before
    assert _body(world["alpha"]["old_processed"]) == b'{"id": "evt"}'
    assert not AuditEvent.objects.filter(action="data.purged").exists()
    assert data_purge(now=NOW).counts == dry.counts
    # and a second run finds nothing left
    assert data_purge(now=NOW).total == 0


def test_the_purge_runs_in_bounded_primary_key_batches_and_resumes(tenant, other_tenant):
    connection = connection_create(tenant=tenant, provider="stripe")
    for _ in range(7):
        _event(tenant, connection, InboundEvent.Status.REJECTED, OLD)
    with CaptureQueriesContext(db_connection) as queries:
        first = data_purge(tenants=[tenant], now=NOW, batch_size=2, max_batches=3)
    assert first.counts["alpha"]["rejected_deliveries"] == 6
    assert ("alpha", "rejected_deliveries") in first.unfinished
    deletes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('DELETE FROM "integrations_inboundevent"')
    ]
    assert len(deletes) == 3 and all(" IN (" in sql for sql in deletes)  # never one DELETE for everything
    second = data_purge(tenants=[tenant], now=NOW, batch_size=2, max_batches=3)
    assert second.counts["alpha"]["rejected_deliveries"] == 1 and not second.unfinished
    assert not InboundEvent.objects.exists()


def test_a_row_that_becomes_needed_during_the_batch_is_left_alone(tenant, other_tenant, monkeypatch):
    connection = connection_create(tenant=tenant, provider="stripe")
    event = _event(tenant, connection, InboundEvent.Status.PROCESSED, OLD)
    original = retention.ACTIONS["webhook_bodies"]

    def replayed_meanwhile(rows, now):
        # a person replays the event between the batch's read and its write
        InboundEvent.objects.filter(pk=event.pk).update(status=InboundEvent.Status.PENDING)
        return original(rows, now)

    monkeypatch.setitem(retention.ACTIONS, "webhook_bodies", replayed_meanwhile)
    assert data_purge(tenants=[tenant], now=NOW).counts["alpha"]["webhook_bodies"] == 0
    assert _body(event) == b'{"id": "evt"}'


def test_a_purged_event_is_not_replayed(tenant, other_tenant):
    connection = connection_create(tenant=tenant, provider="stripe")
    event = _event(tenant, connection, InboundEvent.Status.PROCESSED, OLD)
    data_purge(tenants=[tenant], now=NOW)
    assert inbound_events_replay(events=[event], actor=SYSTEM) == 0
    assert InboundEvent.objects.get(pk=event.pk).status == "processed"


def test_tenant_retention_reads_overrides_over_the_defaults(tenant, settings):
    settings.RETENTION_ATTEMPT_DAYS = 14
    tenant.retention_webhook_body_days = 7
    assert tenant.retention == {"webhook_body_days": 7, "attempt_days": 14, "dead_letter_days": 90}


def test_the_command_prints_counts_per_kind_and_tenant(tenant, other_tenant, world):
    out = StringIO()
    call_command("data_purge", "--dry-run", "--tenant", "alpha", stdout=out)
    text = out.getvalue()
    assert "would purge" in text and "bravo" not in text
    for kind, count in EXPECTED.items():
        assert any(line.split() == ["alpha", kind, str(count)] for line in text.splitlines()), kind
    assert _body(world["alpha"]["old_processed"]) == b'{"id": "evt"}'
    out = StringIO()
    call_command("data_purge", stdout=out)
    assert "Total purged: 18" in out.getvalue()  # alpha's 9 and bravo's 9
    assert AuditEvent.objects.filter(action="data.purged", via="cli").count() == 2


def test_the_purge_is_a_declared_daily_schedule():
    schedule = next(s for s in declared_schedules() if s["name"] == "data-purge")
    assert schedule["func"] == "sync.tasks.data_purge" and schedule["schedule_type"] == "D"
