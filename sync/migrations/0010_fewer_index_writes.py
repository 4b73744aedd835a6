"""Fewer index entries written by the submitter's every call (docs/decisions.md, ninth round).

Drops four single-column foreign-key indexes that a tenant-led (or attempt-led) index already
serves, and ``outbound_lease_idx``, so that the heartbeat's lease renewal, which changes only
``lease_expires_at``, can be a HOT update. Only the indexes go: a plain AlterField of
``db_index`` would also drop and re-validate each foreign key on PostgreSQL and copy the whole
table on SQLite. On PostgreSQL the drops are CONCURRENT, as 0009's build was: the release step
runs while the old code still enqueues (docs/deploying.md, "Upgrading").
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.migrations.operations.base import Operation

from sync.migrations._concurrently import RemoveIndexConcurrentlyOnPostgres


class DropForeignKeyIndex(Operation):
    """The database half of a foreign key's ``db_index`` going to False: drop the single-column
    index Django made for it (found by introspection, whatever its generated name), nothing else."""

    reversible = True

    def __init__(self, model_name: str, name: str) -> None:
        self.model_name, self.name = model_name, name

    def state_forwards(self, app_label, state):
        pass  # the AlterField beside it in SeparateDatabaseAndState changes the state

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        column = model._meta.get_field(self.name).column
        connection = schema_editor.connection
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
        concurrently = " CONCURRENTLY" if connection.vendor == "postgresql" else ""
        for index, info in constraints.items():
            if info["index"] and not info["unique"] and not info["primary_key"] and info["columns"] == [column]:
                schema_editor.execute(f"DROP INDEX{concurrently} IF EXISTS {schema_editor.quote_name(index)}")

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        schema_editor.execute(schema_editor._create_index_sql(model, fields=[model._meta.get_field(self.name)]))

    def describe(self):
        return f"Drop the index of {self.model_name}.{self.name}"


def _fk(to: str, **options) -> models.ForeignKey:
    return models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, to=to, **options)


def _without_index(model_name: str, name: str, field: models.ForeignKey) -> migrations.SeparateDatabaseAndState:
    return migrations.SeparateDatabaseAndState(
        state_operations=[migrations.AlterField(model_name=model_name, name=name, field=field)],
        database_operations=[DropForeignKeyIndex(model_name, name)],
    )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("sync", "0009_outbound_wake_index"),
        ("tenants", "0004_retention_overrides"),
    ]

    operations = [
        RemoveIndexConcurrentlyOnPostgres(model_name="outbounditem", name="outbound_lease_idx"),
        _without_index("attempt", "tenant", _fk("tenants.tenant", related_name="attempts")),
        _without_index("attemptitem", "attempt", _fk("sync.attempt")),
        _without_index("outbounditem", "tenant", _fk("tenants.tenant", related_name="outbound_items")),
        _without_index("syncrecord", "tenant", _fk("tenants.tenant", related_name="sync_records")),
    ]
