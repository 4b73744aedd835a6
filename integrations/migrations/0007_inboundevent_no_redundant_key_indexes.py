"""Drop the single-column indexes on InboundEvent's two keys: the composite indexes lead with
them, and every index is written by every webhook's INSERT.

Django's AlterField would drop and re-add each foreign key to drop its index, validating the
whole table under lock; only the indexes go here, and the keys stay as they are.
"""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = {
    "integrations_inboundevent_connection_id_a15dfd32": "connection_id",
    "integrations_inboundevent_tenant_id_af681be2": "tenant_id",
}


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0006_ratebucket_window"),
        ("tenants", "0004_retention_overrides"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="inboundevent",
                    name="connection",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="integrations.connection",
                    ),
                ),
                migrations.AlterField(
                    model_name="inboundevent",
                    name="tenant",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="inbound_events",
                        to="tenants.tenant",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=f'CREATE INDEX IF NOT EXISTS "{name}" ON "integrations_inboundevent" ("{column}")',
                )
                for name, column in INDEXES.items()
            ],
        )
    ]
