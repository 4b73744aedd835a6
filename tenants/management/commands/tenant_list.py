from django.core.management.base import BaseCommand
from django.db.models import Count, Q

from tenants import selectors
from tenants.models import Credential


class Command(BaseCommand):
    help = "List tenants with their status, budget and how many active credentials they hold."

    def handle(self, *args, **options):
        tenants = selectors.tenant_list().annotate(
            active_credentials=Count("credentials", filter=Q(credentials__state=Credential.State.ACTIVE))
        )
        header = f"{'SLUG':<24} {'STATUS':<8} {'BUDGET/H':>8} {'CREDS':>5}  {'PUBLIC ID':<36}  NAME"
        self.stdout.write(header)
        for t in tenants:
            self.stdout.write(
                f"{t.slug:<24} {t.status:<8} {t.hourly_request_budget:>8} {t.active_credentials:>5}  "
                f"{t.public_id!s:<36}  {t.name}"
            )
