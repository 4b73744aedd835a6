"""The tenant-led index a release reads its wake time by (sync.outbound.tenant_queue).

Built CONCURRENTLY on PostgreSQL: the release step runs while the old code still enqueues
(docs/deploying.md, "Upgrading"), and a plain CREATE INDEX on a large outbound table would hold
every enqueue until it finished. Other databases build it the ordinary way.
"""

from django.db import migrations, models

from sync.migrations._concurrently import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("sync", "0008_tenantqueue_due_since"),
        ("tenants", "0004_retention_overrides"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="outbounditem",
            index=models.Index(
                fields=["tenant", "direction", "state", "next_attempt_at"], name="outbound_wake_idx"
            ),
        ),
    ]
