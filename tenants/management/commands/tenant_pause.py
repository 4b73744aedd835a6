from tenants.management.base import CLI, TenantCommand, tenant_from_arg
from tenants.services import tenant_pause


class Command(TenantCommand):
    help = "Pause every sync of a tenant (the admin's 'Pause')."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--reason", required=True, help="Recorded and shown on the dashboard")

    def handle(self, *args, **options):
        tenant = tenant_from_arg(options["tenant"])
        n = tenant_pause(tenant=tenant, reason=options["reason"], actor=CLI)
        self.stdout.write(f"Paused {int(n)} tenant(s).")
