"""What the submitter's writes cost in index entries (docs/decisions.md, ninth round).

Every call to Virtuous changes an item three times (claimed, renewed, submitted) and writes an
Attempt, its link and a sync record: each index on those tables is one more entry per write.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from sync.models import Attempt, AttemptItem, OutboundItem, SyncRecord
from sync.outbound.claim import outbound_claim
from sync.outbound.leases import leases_renew
from tests.sync.conftest import enqueue_gifts

pytestmark = pytest.mark.django_db

HOT_TABLES = (OutboundItem, Attempt, AttemptItem, SyncRecord)

# The foreign keys these tables are looked up by (a tenant's rows, an attempt's links, a contact
# write's waiting gifts), with the index each lookup goes by.
LOOKUPS = [
    (OutboundItem, "tenant"),
    (OutboundItem, "depends_on"),
    (Attempt, "tenant"),
    (AttemptItem, "attempt"),
    (AttemptItem, "item"),
    (SyncRecord, "tenant"),
]


def _indexes(model) -> dict[str, list[str]]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    # A unique constraint is an index too (PostgreSQL reports it as a constraint only).
    return {name: info["columns"] for name, info in constraints.items() if info["index"] or info["unique"]}


@pytest.mark.parametrize(("model", "field"), LOOKUPS, ids=lambda v: getattr(v, "__name__", v))
def test_each_foreign_key_lookup_leads_an_index(model, field):
    column = model._meta.get_field(field).column
    assert any(columns[0] == column for columns in _indexes(model).values())


@pytest.mark.parametrize("model", HOT_TABLES, ids=lambda m: m.__name__)
def test_no_index_repeats_the_lead_of_another(model):
    """A single-column index whose column already leads a wider index serves no lookup the wider
    one does not, and costs a write on every insert and every non-HOT update."""
    indexes = _indexes(model)
    repeated = [
        name
        for name, columns in indexes.items()
        if len(columns) == 1
        and any(
            other != name and len(wider) > 1 and wider[0] == columns[0] for other, wider in indexes.items()
        )
    ]
    assert repeated == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="HOT updates are PostgreSQL's")
def test_a_lease_renewal_writes_no_index_entries(tenant, other_tenant):
    """The heartbeat renews every item a drain holds every 10 s: with lease_expires_at in no
    index, each renewal is a HOT update (the row's new version on its page, no index entry)."""
    enqueue_gifts(tenant, 3)
    enqueue_gifts(other_tenant, 2)
    outbound_claim(tenant=tenant, worker="w1", limit=10)
    outbound_claim(tenant=other_tenant, worker="w1", limit=10)

    def updates() -> tuple[int, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = %s",
                [OutboundItem._meta.db_table],
            )
            return cursor.fetchone()

    before = updates()
    assert leases_renew(tenant_id=tenant.pk, worker="w1")[0] == 3
    after = updates()
    assert (after[0] - before[0], after[1] - before[1]) == (3, 3)


@pytest.mark.django_db(transaction=True)
def test_the_migration_drops_only_the_repeated_indexes_and_puts_them_back():
    executor = MigrationExecutor(connection)
    now = {model: set(_indexes(model)) for model in HOT_TABLES}
    try:
        executor.migrate([("sync", "0009_outbound_wake_index")])
        before = {model: set(_indexes(model)) for model in HOT_TABLES}
        dropped = {model._meta.db_table: sorted(before[model] - now[model]) for model in HOT_TABLES}
        assert all(not (now[model] - before[model]) for model in HOT_TABLES)
        assert "outbound_lease_idx" in dropped["sync_outbounditem"]
        assert [len(names) for names in dropped.values()] == [2, 1, 1, 1]
        foreign_keys = [n for names in dropped.values() for n in names if n != "outbound_lease_idx"]
        assert all(n.split("_")[-2] == "id" for n in foreign_keys), foreign_keys  # <table>_<fk>_id_<hash>
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert {model: set(_indexes(model)) for model in HOT_TABLES} == now
