"""Index operations that run CONCURRENTLY on PostgreSQL and the ordinary way elsewhere (0009, 0010).

The release step runs while the old code still enqueues (docs/deploying.md, "Upgrading"): a plain
CREATE or DROP INDEX on a large outbound table would hold every write until it finished. The
leading underscore keeps Django's migration loader from taking this module for a migration.
"""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db.migrations.operations import AddIndex, RemoveIndex


def _on_postgres(concurrent: type, plain: type) -> type:
    def run(step: str):
        def database_step(self, app_label, schema_editor, from_state, to_state):
            base = concurrent if schema_editor.connection.vendor == "postgresql" else plain
            getattr(base, step)(self, app_label, schema_editor, from_state, to_state)

        return database_step

    name = f"{concurrent.__name__}OnPostgres"
    return type(
        name,
        (concurrent,),
        {
            "database_forwards": run("database_forwards"),
            "database_backwards": run("database_backwards"),
            "__module__": __name__,
            "__qualname__": name,
        },
    )


AddIndexConcurrentlyOnPostgres = _on_postgres(AddIndexConcurrently, AddIndex)
RemoveIndexConcurrentlyOnPostgres = _on_postgres(RemoveIndexConcurrently, RemoveIndex)
