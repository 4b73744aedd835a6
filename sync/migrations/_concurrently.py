"""Index operations that run CONCURRENTLY on PostgreSQL and the ordinary way elsewhere (0009, 0010).

The release step runs while the old code still enqueues (docs/deploying.md, "Upgrading"): a plain
CREATE or DROP INDEX on a large outbound table would hold every write until it finished. The
leading underscore keeps Django's migration loader from taking this module for a migration.
"""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db.migrations.operations import AddIndex, RemoveIndex


class _PlainOffPostgres:
    """Mixed in before a CONCURRENTLY operation: other databases run ``plain``'s SQL instead."""

    plain: type

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            self.plain.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            self.plain.database_backwards(self, app_label, schema_editor, from_state, to_state)


class AddIndexConcurrentlyOnPostgres(_PlainOffPostgres, AddIndexConcurrently):
    plain = AddIndex


class RemoveIndexConcurrentlyOnPostgres(_PlainOffPostgres, RemoveIndexConcurrently):
    plain = RemoveIndex
