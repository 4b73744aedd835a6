import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from sync.models import ImportRun
from sync.ops.imports.files import ImportStopped
from sync.ops.imports.signoff import import_run_signoff, import_signoff, signoff_csv_write, signoff_lines
from tenants.management.base import CLI, tenant_from_arg


class Command(BaseCommand):
    help = (
        "Sign-off report of a historical import: counts and sums per project of what was imported under a batch "
        "label against what Virtuous holds in that batch (Gift/Query). Writes CSV to --csv or stdout."
    )

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="Tenant slug or public id")
        parser.add_argument("--batch", required=True, help="Batch label, e.g. Historical-Import-2026-11")
        parser.add_argument("--csv", type=Path, help="Write the CSV here instead of stdout")
        parser.add_argument("--max-wait", type=float, default=60.0, help="Seconds to wait for rate budget")

    def handle(self, *args, **options):
        tenant = tenant_from_arg(options["tenant"])
        run = (
            ImportRun.objects.filter(
                tenant=tenant, kind=ImportRun.Kind.HISTORICAL_GIFTS, batch_label=options["batch"]
            )
            .order_by("-started_at")
            .first()
        )
        try:
            if run is not None:
                # The same service as the admin's sign-off action: kept on the run, audited.
                signoff = import_run_signoff(run=run, actor=CLI, max_wait=options["max_wait"])
            else:
                signoff = import_signoff(
                    tenant=tenant, batch_label=options["batch"], max_wait=options["max_wait"]
                )
        except ImportStopped as exc:
            raise CommandError(f"Stopped: {exc.reason}. Try again later.") from exc
        if options["csv"]:
            with options["csv"].open("w", newline="", encoding="utf-8") as handle:
                signoff_csv_write(signoff, handle)
        else:
            signoff_csv_write(signoff, self.stdout)
        # With the CSV on stdout, the words go to stderr so the CSV stays clean.
        words = sys.stderr if options["csv"] is None else self.stdout
        words.write(f"{signoff['imported_gifts']} imported, {signoff['virtuous_gifts']} in Virtuous.\n")
        for line in signoff_lines(signoff):
            words.write(line + "\n")
