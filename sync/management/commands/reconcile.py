import csv

from django.core.management.base import BaseCommand, CommandError

from integrations.virtuous.errors import VirtuousError
from sync.ops import reconcile, reconcile_report
from tenants.management.base import tenant_from_arg

PASSES = ("stuck", "missed_webhooks", "drift")


class Command(BaseCommand):
    help = (
        "Reconcile a tenant with Virtuous now: stuck transactions (submitted > 24 h), needs-update suspects "
        "(404 after 72 h), missed webhooks (modified since the inbound checkpoint) and drift (a sample of pairs), "
        "then print the reconciliation report. Findings go to the reconciliation log."
    )

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="Tenant slug or public id")
        parser.add_argument(
            "--pass", dest="passes", action="append", choices=PASSES, help="Run only these passes"
        )
        parser.add_argument("--drift-sample", type=int, default=reconcile.DRIFT_SAMPLE)
        parser.add_argument("--report-only", action="store_true", help="Print the report, call nothing")
        parser.add_argument("--csv", action="store_true", help="Print the report as CSV")
        parser.add_argument("--max-wait", type=float, default=60.0, help="Seconds to wait for rate budget")

    def handle(self, *args, **options):
        tenant = tenant_from_arg(options["tenant"])
        if not options["report_only"]:
            try:
                results = reconcile.reconcile_run(
                    tenant=tenant,
                    passes=tuple(options["passes"] or PASSES),
                    drift_sample=options["drift_sample"],
                    max_wait=options["max_wait"],
                )
            except VirtuousError as exc:
                raise CommandError(str(exc)) from exc
            for name, counts in results.items():
                self.stdout.write(f"{name}: " + " ".join(f"{k}={v}" for k, v in counts.items()))
        report = reconcile_report.reconcile_report(tenant=tenant)
        if options["csv"]:
            writer = csv.writer(self.stdout)
            writer.writerow(list(report))
            writer.writerow(list(report.values()))
        else:
            self.stdout.write("report: " + " ".join(f"{k}={v}" for k, v in report.items()))
