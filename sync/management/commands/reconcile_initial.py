import hashlib

from django.core.management.base import BaseCommand, CommandError

from integrations.virtuous.errors import VirtuousError
from sync.clients import virtuous_client
from sync.models import ImportRun
from sync.ops import initial_reconciliation, reconcile
from sync.ops.imports.enqueue import import_run_open
from sync.progress import ProgressBar
from tenants.management.base import tenant_from_arg


class Command(BaseCommand):
    help = (
        "First-connect reconciliation of a tenant. Pattern B (two-way, the default here): page every Virtuous "
        "contact, cross-match by our reference then e-mail with the partner-side contacts we hold, make matched "
        "pairs in_sync baselines, apply --virtuous-only to Virtuous-only contacts and submit partner-only ones. "
        "Pattern A (one-way) is the historical import: manage.py import_historical_gifts. Resumable."
    )

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="Tenant slug or public id")
        parser.add_argument("--pattern", choices=("A", "B"), default="B")
        parser.add_argument(
            "--virtuous-only",
            choices=("external-only", "create"),
            default="external-only",
            help="What Virtuous-only contacts become (recorded per contact in the reconciliation log)",
        )
        parser.add_argument(
            "--estimate-only", action="store_true", help="Print the expected duration and stop"
        )
        parser.add_argument("--max-wait", type=float, default=60.0, help="Seconds to wait for rate budget")

    def handle(self, *args, **options):
        if options["pattern"] == "A":
            raise CommandError(
                "Pattern A is the bulk load: run manage.py import_historical_gifts TENANT --file ... (or --connection)."
            )
        tenant = tenant_from_arg(options["tenant"])
        try:
            client = virtuous_client(tenant, keep_reserve=True)
            estimate = initial_reconciliation.initial_reconciliation_estimate(tenant=tenant, client=client)
        except VirtuousError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Expected: {estimate['virtuous_contacts']} Virtuous contact(s), {estimate['partner_contacts']} partner "
            f"contact(s), about {estimate['requests']} request(s) at {estimate['bulk_requests_per_hour']}/h for bulk "
            f"work: about {estimate['hours']} h."
        )
        if options["estimate_only"]:
            return
        policy = options["virtuous_only"].replace("-", "_")
        run, resumed = import_run_open(
            tenant=tenant,
            kind=ImportRun.Kind.INITIAL_RECONCILIATION,
            source_label=f"Virtuous contacts × partner contacts ({policy})",
            fingerprint=hashlib.sha256(f"{tenant.public_id}:initial:{policy}".encode()).hexdigest(),
        )
        if resumed:
            self.stdout.write(f"Resuming after Virtuous contact {run.last_row_committed}.")
        bar = ProgressBar("match", estimate["virtuous_contacts"])
        try:
            initial_reconciliation.initial_reconciliation_run(
                run=run,
                client=client,
                virtuous_only=policy,
                max_wait=options["max_wait"],
                on_progress=bar.update,
            )
        except reconcile.ReconcileStopped as exc:
            raise CommandError(f"Stopped: {exc}. Run the same command again to resume.") from exc
        except VirtuousError as exc:
            raise CommandError(f"{exc}. Run the same command again to resume.") from exc
        bar.close(estimate["virtuous_contacts"])
        c = run.counters
        self.stdout.write(
            "Summary: "
            + ", ".join(
                f"{k}={c.get(k, 0)}"
                for k in (
                    "matched_by_reference",
                    "matched_by_email",
                    "virtuous_only",
                    "partner_only",
                    "partner_only_submitted",
                    "skipped_merged",
                )
            )
        )
