"""The capture path's fixed statements read and write exactly what the ORM would."""

from datetime import timedelta

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from integrations.common.rows import RowInserter, fixed_cursor
from integrations.models import Connection, InboundEvent
from integrations.selectors import connection_for_webhook
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
