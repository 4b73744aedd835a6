import time

from django.core.management.base import BaseCommand, CommandError

from sync.outbound.dispatch import outbound_dispatch
from sync.outbound.drain import outbound_drain
from tenants.management.base import tenant_from_arg


class Command(BaseCommand):
    help = (
        "Drain the outbound queue now: one tenant (TENANT) for one slice, or every due tenant for --seconds "
        "with --threads drains at a time. The scheduler does this continuously; use it to push a backlog by hand."
    )

    def add_arguments(self, parser):
        parser.add_argument("tenant", nargs="?", help="Tenant slug or public id (default: every due tenant)")
        parser.add_argument("--seconds", type=float, default=30.0)
        parser.add_argument("--threads", type=int, default=None)
        parser.add_argument(
            "--until-empty", action="store_true", help="Return early once nothing is pending or in flight"
        )

    def handle(self, *args, **options):
        if options["seconds"] <= 0:
            raise CommandError("--seconds must be positive.")
        if options["tenant"]:
            tenant = tenant_from_arg(options["tenant"])
            result = outbound_drain(tenant=tenant, deadline=time.monotonic() + options["seconds"])
            self.stdout.write(
                f"{tenant.slug}: submitted={result.submitted} retried={result.retried} dead={result.dead} "
                f"deferred={result.deferred} calls={result.calls} stopped={result.stopped}"
            )
            return
        totals = outbound_dispatch(
            seconds=options["seconds"], threads=options["threads"], stop_when_idle=options["until_empty"]
        )
        self.stdout.write(" ".join(f"{k}={v}" for k, v in totals.items()))
