"""Statements about items in flight read only their own rows, whatever the statistics say.

Items are in flight for a second or two, so an ANALYZE taken at a quiet moment can see none:
PostgreSQL then reckons ``state = 'in_flight'`` matches about one row. While a state-led index
without the tenant held every item, it preferred that index to the primary key for the
submitter's by-id updates, and each call read every item in flight across all tenants (1,400 of
them, 430 buffers a call, at 200 tenants: the database's CPU a call doubled over a benchmark).
"""

from __future__ import annotations

import pytest
from django.db import connection

from sync.models import OutboundItem
from sync.outbound.claim import _reclaim_params, _reclaim_sql
from tests.sync.conftest import enqueue_gifts

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="query plans are PostgreSQL's"),
]

TABLE = OutboundItem._meta.db_table


@pytest.fixture
def stale_statistics(tenant, other_tenant):
    """Statistics taken with nothing in flight; then the other tenant's whole backlog in flight."""
    mine = enqueue_gifts(tenant, 2)
    enqueue_gifts(other_tenant, 400)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {TABLE}")
        # A test's few hundred rows would be read whole; the choice under test is between indexes.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
    OutboundItem.objects.filter(tenant=other_tenant).update(
        state=OutboundItem.State.IN_FLIGHT, lease_owner="x"
    )
    OutboundItem.objects.filter(tenant=tenant).update(state=OutboundItem.State.IN_FLIGHT, lease_owner="d1")
    return [item.pk for item in mine]


def _plan(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize(
    "where",
    ["id IN (%s, %s)", "id = ANY(ARRAY[%s, %s]::bigint[])"],  # the ORM's transitions; the 2xx statement
    ids=["orm", "fixed"],
)
def test_a_transition_by_id_goes_by_the_primary_key(stale_statistics, where):
    plan = _plan(
        f"UPDATE {TABLE} SET lease_owner = '' WHERE {where} AND state = %s AND lease_owner = %s",
        [*stale_statistics, OutboundItem.State.IN_FLIGHT, "d1"],
    )
    assert f"{TABLE}_pkey" in plan, plan


def test_the_reclaim_goes_by_an_index_for_one_tenant_and_for_all(stale_statistics, tenant):
    now = "2026-01-01T00:00:00Z"
    one = _plan(_reclaim_sql(True), _reclaim_params(tenant, now))
    assert "outbound_claim_idx" in one or "outbound_submitted_idx" in one, one
    every = _plan(_reclaim_sql(False), _reclaim_params(None, now))
    assert "Seq Scan" not in every and "outbound_direction_idx" in every, every
