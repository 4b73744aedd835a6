from django.core.management.base import CommandError

from integrations.virtuous.errors import VirtuousError
from sync.ops.offboard import DATA_ANONYMISE, DATA_DELETE, OffboardError, tenant_offboard
from tenants.management.base import CLI, TenantCommand, tenant_from_arg


class Command(TenantCommand):
    help = "Offboard a tenant: stop syncs, delete its Virtuous webhook, retire credentials, remove data."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--data", choices=[DATA_DELETE, DATA_ANONYMISE], default=DATA_DELETE)
        parser.add_argument("--yes", action="store_true", help="Confirm: this cannot be undone")

    def handle(self, *args, **options):
        tenant = tenant_from_arg(options["tenant"])
        if not options["yes"]:
            raise CommandError(f"Offboarding {tenant.slug} cannot be undone; run again with --yes.")
        try:
            result = tenant_offboard(tenant=tenant, actor=CLI, data=options["data"])
        except (OffboardError, VirtuousError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Offboarded {tenant.slug}: webhook {result.webhook}, {result.credentials_retired} credential(s) "
            f"retired, {result.connections_stopped} connection(s) stopped, rows {options['data']}d: {result.rows}"
        )
