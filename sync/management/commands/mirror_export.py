from django.core.management.base import BaseCommand

from sync.two_way.mirror import MODELS, mirror_export_csv
from tenants.management.base import tenant_from_arg


class Command(BaseCommand):
    help = "Export one tenant's reporting mirror of Virtuous (contacts, gifts or recurring gifts) as CSV."

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="Tenant slug or public id")
        parser.add_argument("--resource", choices=sorted(MODELS), default="gift")
        parser.add_argument("--out", help="File to write (default: standard output)")

    def handle(self, *args, **options):
        tenant = tenant_from_arg(options["tenant"])
        if options["out"]:
            with open(options["out"], "w", newline="", encoding="utf-8") as out:
                count = mirror_export_csv(tenant=tenant, resource=options["resource"], out=out)
            self.stderr.write(f"{count} {options['resource']} row(s) written to {options['out']}")
        else:
            mirror_export_csv(tenant=tenant, resource=options["resource"], out=self.stdout)
