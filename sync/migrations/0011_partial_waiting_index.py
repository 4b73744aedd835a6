"""outbound_waiting_idx holds waiting items only (sync/models.py, tests/sync/test_in_flight_plans.py).

With every item in it, led by the state, PostgreSQL took it for the submitter's by-id updates of
items in flight whenever its statistics said nothing was in flight, and read every tenant's items
in flight at each call. Dropped and built again CONCURRENTLY on PostgreSQL, as 0009 and 0010.
"""

from django.db import migrations, models

from sync.migrations._concurrently import AddIndexConcurrentlyOnPostgres, RemoveIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("sync", "0010_fewer_index_writes"),
        ("tenants", "0004_retention_overrides"),
    ]

    operations = [
        RemoveIndexConcurrentlyOnPostgres(model_name="outbounditem", name="outbound_waiting_idx"),
        AddIndexConcurrentlyOnPostgres(
            model_name="outbounditem",
            index=models.Index(
                fields=["waiting_since"], condition=models.Q(state="waiting"), name="outbound_waiting_idx"
            ),
        ),
    ]
