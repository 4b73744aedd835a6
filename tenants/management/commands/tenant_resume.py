from tenants.management.base import CLI, TenantCommand, tenant_from_arg
from tenants.services import tenant_resume


class Command(TenantCommand):
    help = "Resume a paused tenant (the admin's 'Resume')."

    def handle(self, *args, **options):
        tenant = tenant_from_arg(options["tenant"])
        n = tenant_resume(tenant=tenant, actor=CLI)
        self.stdout.write(f"Resumed {int(n)} tenant(s).")
