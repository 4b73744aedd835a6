"""The hot paths' fixed statements and the bulk path's COPY read and write exactly what the ORM would."""

from datetime import timedelta

import psycopg
import pytest
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from integrations.common.rows import RowInserter, bulk_insert, fixed_cursor
from integrations.models import Connection, InboundEvent
from integrations.selectors import connection_for_webhook
from integrations.types import Operation
from sync.models import PRIORITY_BULK, Origin, OutboundItem
from tenants.models import Tenant

needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL: SQLite has no prepared statements to look at"
)


def _fields(obj) -> dict:
    return {field.attname: getattr(obj, field.attname) for field in type(obj)._meta.concrete_fields}


def test_the_webhook_lookup_builds_the_same_connection_and_tenant_as_the_orm(
    tenant, other_tenant, make_connection
):
    ours = make_connection(
        tenant,
        "stripe",
        secret="whsec_1",
        settings={"tolerance_seconds": 120},
        name="Main account",
    )
    make_connection(other_tenant, "stripe", secret="whsec_2")
    Connection.objects.filter(pk=ours.pk).update(
        project_code_map={"form-7": "SPRING"}, paused_until=timezone.now() + timedelta(hours=1)
    )
    found = connection_for_webhook(token=str(ours.webhook_token))
    assert _fields(found) == _fields(Connection.objects.get(pk=ours.pk))
    assert _fields(found.tenant) == _fields(Tenant.objects.get(pk=tenant.pk))
    assert found.tenant.slug == "alpha"
    assert not found._state.adding


def _event(connection: Connection, key: str) -> InboundEvent:
    return InboundEvent(
        tenant_id=connection.tenant_id,
        connection=connection,
        provider="stripe",
        event_type="payment_intent.succeeded",
        dedupe_key=key,
        headers={"Content-Type": "application/json", "Stripe-Signature": "[redacted]"},
        body=b'{"id": "evt_1", "amount": 2500}',
        body_sha256="0" * 64,
        body_size=31,
        content_type="application/json",
        remote_addr="203.0.113.9",
        signature_valid=True,
        occurred_at=timezone.now() - timedelta(minutes=2),
    )


def test_an_inserted_event_reads_back_as_the_orm_would_have_saved_it(tenant, make_connection):
    hook = make_connection(tenant, "stripe")
    row = _event(hook, "evt_1")
    RowInserter(InboundEvent, connection).insert(connection, row)
    assert row.pk is not None and not row._state.adding
    stored = InboundEvent.objects.get(pk=row.pk)
    expected = _fields(row)
    expected["body"] = bytes(expected["body"])
    got = _fields(stored)
    got["body"] = bytes(got["body"])
    assert got == expected
    assert stored.public_id == row.public_id and stored.received_at == row.received_at


def test_a_duplicate_is_a_django_integrity_error_and_leaves_the_transaction_usable(tenant, make_connection):
    hook = make_connection(tenant, "stripe")
    inserter = RowInserter(InboundEvent, connection)
    inserter.insert(connection, _event(hook, "evt_1"))
    with pytest.raises(IntegrityError), transaction.atomic():
        inserter.insert(connection, _event(hook, "evt_1"))
    assert InboundEvent.objects.filter(connection=hook).count() == 1


def _checked() -> RowInserter:
    """Stores only when the connection it is given (and the count) exist."""
    return RowInserter(
        InboundEvent,
        connection,
        where=f"(SELECT COUNT(*) FROM {Connection._meta.db_table} WHERE id = %s) = %s",
    )


def test_a_checked_insert_stores_the_same_row_when_its_condition_holds(tenant, make_connection):
    hook = make_connection(tenant, "stripe")
    row = _event(hook, "evt_1")
    row.remote_addr, row.occurred_at, row.body_size = None, None, None  # NULLs need their types too
    assert _checked().insert(connection, row, [hook.pk, 1]) is True
    stored = InboundEvent.objects.get(pk=row.pk)
    expected, got = _fields(row), _fields(stored)
    expected["body"], got["body"] = bytes(expected["body"]), bytes(got["body"])
    assert got == expected


def test_a_checked_insert_stores_nothing_when_its_condition_fails(tenant, make_connection):
    hook = make_connection(tenant, "stripe")
    row = _event(hook, "evt_1")
    assert _checked().insert(connection, row, [hook.pk, 0]) is False
    assert row.pk is None and row._state.adding
    assert not InboundEvent.objects.exists()


def test_a_checked_insert_refuses_a_value_too_long_for_its_column(tenant, make_connection):
    """Its typed placeholders drop the length (varchar, not varchar(100)), so the column still
    checks it: a cast to the column's own type would cut the value short without a word."""
    hook = make_connection(tenant, "stripe")
    row = _event(hook, "evt_1")
    row.event_type = "x" * 101
    if connection.vendor == "postgresql":
        with pytest.raises(DataError), transaction.atomic():
            _checked().insert(connection, row, [hook.pk, 1])
        assert not InboundEvent.objects.exists()
    else:  # SQLite does not enforce lengths, for the ORM either
        assert _checked().insert(connection, row, [hook.pk, 1]) is True


@needs_postgresql
def test_the_capture_statements_are_prepared_on_postgresql(tenant, make_connection, client):
    hook = make_connection(tenant, "stripe", secret="whsec_1")
    assert connection_for_webhook(token=hook.webhook_token) is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("webhook_token" in statement for statement in prepared), prepared


@needs_postgresql
def test_prepared_statements_can_be_turned_off(db, settings):
    settings.DATABASE_PREPARED_STATEMENTS = False
    with fixed_cursor(connection) as cursor:
        assert isinstance(cursor.cursor, psycopg.ClientCursor)  # Django's own: nothing prepared
    settings.DATABASE_PREPARED_STATEMENTS = True
    with fixed_cursor(connection) as cursor:
        assert not isinstance(cursor.cursor, psycopg.ClientCursor)


# --- bulk_insert: the bulk path's COPY ------------------------------------------------------

needs_copy = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: COPY is PostgreSQL's (SQLite keeps bulk_create)",
)


DUE = timezone.now()


def _item(tenant: Tenant, key: str, **fields) -> OutboundItem:
    values = {
        "tenant": tenant,
        "operation": Operation.GIFT_TRANSACTION,
        "idempotency_key": key,
        "external_source": "Import",
        "external_id": key,
        "payload": {
            "amount": "25.50",
            "note": 'tab\there, "quotes", back\\slash, new\nline, ünïcode',
            "nested": {"list": [1, None, True]},
        },
        "origin": Origin.BULK,
        "priority": PRIORITY_BULK,
        "next_attempt_at": DUE,
    }
    return OutboundItem(**{**values, **fields})


def _stored(tenant: Tenant, key: str) -> dict:
    row = _fields(OutboundItem.objects.get(tenant=tenant, idempotency_key=key))
    for name in ("id", "public_id", "idempotency_key", "external_id", "created_at", "updated_at"):
        row.pop(name)
    return row


@needs_copy
def test_copied_rows_read_back_as_bulk_create_would_have_stored_them(tenant):
    waiting = {"state": OutboundItem.State.WAITING, "last_error": "waits for its contact", "attempts": 0}
    OutboundItem.objects.bulk_create([_item(tenant, "orm-1"), _item(tenant, "orm-2", **waiting)])
    bulk_insert(OutboundItem, [_item(tenant, "copy-1"), _item(tenant, "copy-2", **waiting)])
    assert _stored(tenant, "copy-1") == _stored(tenant, "orm-1")
    assert _stored(tenant, "copy-2") == _stored(tenant, "orm-2")
    copied = OutboundItem.objects.get(tenant=tenant, idempotency_key="copy-1")
    assert copied.payload["note"] == 'tab\there, "quotes", back\\slash, new\nline, ünïcode'
    assert copied.public_id is not None and copied.created_at is not None


@needs_copy
def test_a_copy_skips_keys_already_queued_and_never_touches_the_outsider(tenant, other_tenant):
    OutboundItem.objects.bulk_create(
        [
            _item(tenant, "k-1", payload={"first": True}),
            _item(other_tenant, "k-2", payload={"outsider": True}),
        ]
    )
    bulk_insert(OutboundItem, [_item(tenant, "k-1", payload={"second": True}), _item(tenant, "k-2")])
    assert OutboundItem.objects.get(tenant=tenant, idempotency_key="k-1").payload == {"first": True}
    assert OutboundItem.objects.filter(tenant=tenant).count() == 2
    assert OutboundItem.objects.get(tenant=other_tenant).payload == {"outsider": True}


@needs_copy
def test_copies_in_one_transaction_are_independent_and_a_failed_one_rolls_back_alone(tenant):
    with transaction.atomic():
        for key in ("a", "b"):  # the scratch table of the first copy is gone before the second
            bulk_insert(OutboundItem, [_item(tenant, key)])
        with pytest.raises(DataError):
            bulk_insert(OutboundItem, [_item(tenant, "c"), _item(tenant, "d", operation="x" * 200)])
        bulk_insert(OutboundItem, [_item(tenant, "e")])
    assert sorted(OutboundItem.objects.values_list("idempotency_key", flat=True)) == ["a", "b", "e"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'giftline_copy_%%'")
        assert cursor.fetchone()[0] == 0
