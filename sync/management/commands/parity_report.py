import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from integrations.models import Connection
from sync.ops.parity import parity_report
from tenants.management.base import tenant_from_arg


class Command(BaseCommand):
    help = (
        "Compare what a connection's webhooks captured with what its polls captured over a window "
        "(both / webhook only / poll only), to decide with evidence whether polling can be demoted."
    )

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="Tenant slug or public id")
        parser.add_argument("--provider", default="virtuous", help="Connection provider (default: virtuous)")
        parser.add_argument("--days", type=float, default=7.0, help="Window length, ending now")
        parser.add_argument("--list", action="store_true", help="Also list the one-sided changes")

    def handle(self, *args, **options):
        tenant = tenant_from_arg(options["tenant"])
        connections = Connection.objects.filter(tenant=tenant, provider=options["provider"]).order_by("pk")
        if not connections:
            raise CommandError(f"{tenant.slug} has no {options['provider']} connection")
        until = timezone.now()
        since = until - dt.timedelta(days=options["days"])
        for connection in connections:
            report = parity_report(connection=connection, since=since, until=until)
            self.stdout.write(
                f"{connection}: changes={report['changes']} both={report['both']} "
                f"webhook_only={report['webhook_only']} poll_only={report['poll_only']} "
                f"parity={report['parity_percent']}% (webhook events {report['webhook_events']}, "
                f"poll events {report['poll_events']}, unprocessed {report['unprocessed']})"
            )
            if options["list"]:
                for key in report["webhook_only_keys"]:
                    self.stdout.write(f"  webhook only: {key}")
                for key in report["poll_only_keys"]:
                    self.stdout.write(f"  poll only: {key}")
