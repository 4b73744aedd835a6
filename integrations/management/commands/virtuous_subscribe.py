from django.conf import settings

from integrations.virtuous.errors import VirtuousError
from integrations.virtuous.services import virtuous_subscription_create
from tenants.management.base import CLI, TenantCommand, tenant_from_arg


class Command(TenantCommand):
    help = "Create the tenant's Virtuous webhook subscription (fresh secret) pointing at this platform."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--base-url", default=None, help="Public base URL of this platform (default PUBLIC_BASE_URL)"
        )

    def handle(self, *args, **options):
        from django.core.management.base import CommandError

        tenant = tenant_from_arg(options["tenant"])
        try:
            connection = virtuous_subscription_create(
                tenant=tenant, base_url=options["base_url"] or settings.PUBLIC_BASE_URL, actor=CLI
            )
        except VirtuousError as exc:
            raise CommandError(f"Virtuous refused the subscription: {exc.message}") from exc
        tenant.refresh_from_db()
        self.stdout.write(
            f"Subscribed {tenant.slug}: webhook id {tenant.virtuous_webhook_id}, connection {connection.public_id}"
        )
