import datetime as dt
import resource
import sys
import tempfile
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from integrations.models import Connection
from integrations.virtuous.errors import VirtuousError
from sync.clients import virtuous_client
from sync.models import ImportRun
from sync.ops.imports.enqueue import historical_import_enqueue, import_run_open
from sync.ops.imports.files import (
    CHUNK_SIZE,
    ImportFileError,
    ImportSettings,
    ImportStopped,
    batch_label_default,
    count_rows,
    historical_spool_from_connection,
    input_fingerprint,
    project_map_load,
)
from sync.ops.imports.plan import plan_lines
from sync.ops.imports.progress import import_run_progress, progress_lines
from sync.ops.imports.validate import ContactResolver, historical_import_validate
from sync.progress import ProgressBar
from tenants.management.base import tenant_from_arg


class Command(BaseCommand):
    help = (
        "Import historical gifts for a tenant from a CSV/XLSX file (layout in the README, 'Historical import') or "
        "from a connection's source API for a date window. Validates every row first (report with --report), "
        "then enqueues into the shared queue as bulk work. Re-running the same input resumes it and never "
        "enqueues a gift twice."
    )

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="Tenant slug or public id")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--file", type=Path, help="CSV or XLSX file in the import layout")
        source.add_argument("--connection", help="Connection public id whose source API to read")
        parser.add_argument("--since", type=dt.date.fromisoformat, help="With --connection: first gift date")
        parser.add_argument("--until", type=dt.date.fromisoformat, help="With --connection: last gift date")
        parser.add_argument("--project-map", type=Path, help="CSV (source_project,project_code) or JSON map")
        parser.add_argument("--source", help="transactionSource (default: the connection's or tenant's)")
        parser.add_argument("--batch", help="Batch label (default Historical-Import-YYYY-MM)")
        parser.add_argument("--currency", default="USD", help="Currency for rows without one")
        parser.add_argument("--gift-type", default="Other", help="Gift type for rows without one")
        parser.add_argument("--dry-run", action="store_true", help="Stop after the validation report")
        parser.add_argument(
            "--skip-invalid", action="store_true", help="Enqueue the valid rows of a file with errors"
        )
        parser.add_argument(
            "--skip-contact-resolution",
            action="store_true",
            help="Structural validation only (no Contact/Find)",
        )
        parser.add_argument(
            "--report",
            type=Path,
            help="Write the validation report (CSV) here (default: giftline-import-<run id>-report.csv "
            "in the temporary directory)",
        )
        parser.add_argument("--max-wait", type=float, default=60.0, help="Seconds to wait for rate budget")
        parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE)
        parser.add_argument(
            "--benchmark", action="store_true", help="Report rows/s and peak memory at the end"
        )

    def handle(self, *args, **options):
        started = time.monotonic()
        tenant = tenant_from_arg(options["tenant"])
        connection = None
        if options["connection"]:
            connection = self._connection(tenant, options["connection"])
        project_map = self._project_map(options, connection)
        settings = ImportSettings(
            transaction_source=options["source"]
            or (connection.source_name if connection else tenant.source_name),
            batch_label=options["batch"] or batch_label_default(),
            project_map=project_map,
            currency=options["currency"].upper(),
            gift_type=options["gift_type"],
        )
        path = options["file"] or self._spool(connection, options)
        if not path.exists():
            raise CommandError(f"No such file: {path}")
        try:
            fingerprint = input_fingerprint(path, settings)
            run, resumed = import_run_open(
                tenant=tenant,
                kind=ImportRun.Kind.HISTORICAL_GIFTS,
                source_label=str(
                    path if connection is None else f"{connection} {options['since']}..{options['until']}"
                ),
                fingerprint=fingerprint,
                transaction_source=settings.transaction_source,
                batch_label=settings.batch_label,
            )
            if resumed:
                self.stdout.write(f"Resuming run {run.public_id} ({run.phase}).")
            total = count_rows(path)
            if run.phase in (ImportRun.Phase.VALIDATING, ImportRun.Phase.PAUSED):
                self._validate(tenant, run, path, settings, options, total)
            self._print_report(run)
            self.stdout.write(f"Validation report: {self._report_path(run, options).resolve()}")
            if options["dry_run"]:
                self.stdout.write("Dry run: nothing was enqueued.")
                return
            if run.phase == ImportRun.Phase.BLOCKED and not options["skip_invalid"]:
                raise CommandError(self._refusal(run, options))
            bar = ProgressBar("enqueue", total)
            historical_import_enqueue(
                run=run,
                path=path,
                settings=settings,
                skip_invalid=options["skip_invalid"],
                on_progress=bar.update,
                chunk_size=options["chunk_size"],
            )
            bar.close(run.last_row_committed)
        except ImportFileError as exc:
            raise CommandError(str(exc)) from exc
        except ImportStopped as exc:
            raise CommandError(f"Stopped: {exc.reason}. Run the same command again to resume.") from exc
        c = run.counters
        self.stdout.write(
            f"Enqueued {c.get('enqueued', 0)} gift(s) in batch {settings.batch_label!r}; "
            f"{c.get('already_queued', 0)} already queued; {c.get('skipped_invalid', 0)} invalid row(s) skipped; "
            f"{c.get('contacts_enqueued', 0)} new donor contact(s) enqueued ahead of their gifts."
        )
        self.stdout.write("Done (per contact category):")
        for line in plan_lines(c, "done"):
            self.stdout.write(line)
        self.stdout.write("Where it stands now:")
        for line in progress_lines(import_run_progress(run)):
            self.stdout.write(line)
        self.stdout.write(
            "Gifts waiting on their contact go out when Virtuous confirms it (after its nightly batch). "
            f"Check later with: manage.py import_signoff {tenant.slug} --batch {settings.batch_label}"
        )
        if options["benchmark"]:
            self._benchmark(run, started)

    def _connection(self, tenant, ref):
        try:
            return Connection.objects.get(tenant=tenant, public_id=ref)
        except (Connection.DoesNotExist, ValueError) as exc:
            raise CommandError(f"{tenant.slug} has no connection {ref!r}.") from exc

    def _project_map(self, options, connection) -> dict[str, str]:
        if options["project_map"]:
            try:
                return project_map_load(options["project_map"])
            except (OSError, ValueError) as exc:
                raise CommandError(f"Cannot read the project map: {exc}") from exc
        if connection is not None and connection.project_code_map:
            return dict(connection.project_code_map)
        raise CommandError("A project map is required (--project-map, or a connection with a project map).")

    def _spool(self, connection, options) -> Path:
        if not options["since"] or not options["until"]:
            raise CommandError("--connection needs --since and --until (YYYY-MM-DD).")
        spool = Path(tempfile.gettempdir()) / (
            f"giftline-history-{connection.public_id}-{options['since']}-{options['until']}.csv"
        )
        bar = ProgressBar("read source")
        try:
            written = historical_spool_from_connection(
                connection=connection,
                since=options["since"],
                until=options["until"],
                path=spool,
                on_progress=bar.update,
            )
        except Exception as exc:  # the source's own errors, reported as they are
            raise CommandError(f"Reading {connection} failed: {exc}") from exc
        bar.close(written)
        self.stdout.write(f"Read {written} gift(s) from {connection} into {spool}.")
        return spool

    def _validate(self, tenant, run, path, settings, options, total) -> None:
        resolver = None
        if not options["skip_contact_resolution"]:
            try:
                client = virtuous_client(tenant, keep_reserve=True)
            except VirtuousError as exc:
                raise CommandError(
                    f"{exc} Use --skip-contact-resolution to validate structure only."
                ) from exc
            resolver = ContactResolver(
                client, reference_source=settings.transaction_source, max_wait=options["max_wait"]
            )
        bar = ProgressBar("validate", total)
        report = self._report_path(run, options).open("a", newline="", encoding="utf-8")
        try:
            historical_import_validate(
                run=run,
                path=path,
                settings=settings,
                resolver=resolver,
                report=report,
                on_progress=bar.update,
                chunk_size=options["chunk_size"],
            )
        finally:
            if report is not None:
                report.close()
        bar.close(run.validated_through_row)

    def _print_report(self, run) -> None:
        c = run.counters
        self.stdout.write(
            f"Validation: {c.get('rows', 0)} row(s), {c.get('valid', 0)} valid, {c.get('invalid', 0)} invalid."
        )
        errors = {k[len("error_") :]: v for k, v in sorted(c.items()) if k.startswith("error_")}
        for category, count in errors.items():
            self.stdout.write(f"  error {category}: {count}")
        for sample in run.errors_sample[:10]:
            self.stdout.write(f"  row {sample['row']} ({sample['donation_id']}): {sample['detail']}")
        contacts = {k[len("contact_") :]: v for k, v in sorted(c.items()) if k.startswith("contact_")}
        if contacts:
            self.stdout.write(
                "Contacts (gifts per category): " + ", ".join(f"{k}={v}" for k, v in contacts.items())
            )
        for project, (count, total) in sorted(run.project_totals.items()):
            self.stdout.write(f"  project {project}: {count} gift(s), {total}")
        if any(k.startswith("plan_") for k in c):
            self.stdout.write("Plan (per contact category; the real run does exactly this):")
            for line in plan_lines(c, "plan"):
                self.stdout.write(line)

    @staticmethod
    def _report_path(run, options) -> Path:
        """--report, or a file named after the run, so a refusal can always point at the rows."""
        return (
            options["report"] or Path(tempfile.gettempdir()) / f"giftline-import-{run.public_id}-report.csv"
        )

    def _refusal(self, run, options) -> str:
        invalid = run.counters.get("invalid", 0)
        valid = run.counters.get("valid", 0)
        return (
            f"Refused: {invalid} invalid row(s); nothing was enqueued. Every invalid row is listed in "
            f"{self._report_path(run, options).resolve()}. "
            f"Fix the file and run the same command again, or add --skip-invalid to import the "
            f"{valid} valid row(s) and leave the invalid ones out."
        )

    def _benchmark(self, run, started) -> None:
        seconds = max(time.monotonic() - started, 1e-6)
        rows = run.counters.get("rows", 0)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_mb = peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
        self.stdout.write(
            f"benchmark: rows={rows} seconds={seconds:.1f} rows_per_s={rows / seconds:,.0f} "
            f"peak_rss_mb={peak_mb:.1f}"
        )
