from django.core.management.base import CommandError

from integrations.virtuous.errors import VirtuousError
from integrations.virtuous.services import (
    virtuous_webhook_secret_rotate,
    virtuous_webhook_secret_rotation_finish,
)
from tenants.management.base import CLI, TenantCommand, tenant_from_arg


class Command(TenantCommand):
    help = (
        "Rotate the tenant's Virtuous webhook secret in two steps: without --finish, a new secret is "
        "given to Virtuous and both are accepted; with --finish (hours later), only the new one is."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--finish", action="store_true", help="End the overlap: retire the old secret")

    def handle(self, *args, **options):
        tenant = tenant_from_arg(options["tenant"])
        try:
            if options["finish"]:
                virtuous_webhook_secret_rotation_finish(tenant=tenant, actor=CLI)
                self.stdout.write(f"{tenant.slug}: rotation finished; only the new secret is accepted")
            else:
                virtuous_webhook_secret_rotate(tenant=tenant, actor=CLI)
                self.stdout.write(f"{tenant.slug}: new secret given to Virtuous; old and new are accepted")
        except (ValueError, VirtuousError) as exc:
            raise CommandError(str(exc)) from exc
