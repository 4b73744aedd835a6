from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from integrations.sandbox import services
from integrations.sandbox.management.base import organization_from_arg


class Command(BaseCommand):
    help = "Set the fault knobs of a sandbox organisation (ORG is its id or exact name)."

    def add_arguments(self, parser):
        parser.add_argument("org")
        parser.add_argument("--error-rate", type=float, help="0..1 share of requests answered with an error")
        parser.add_argument("--error-statuses", help='Comma-separated statuses, e.g. "500,502,503"')
        parser.add_argument("--latency-ms", type=int, help="Latency added to every request")
        parser.add_argument(
            "--timeout-rate", type=float, help="0..1 share of requests answered only after a delay"
        )
        parser.add_argument(
            "--timeout-seconds", type=int, help="That delay (longer than the caller's read timeout)"
        )
        parser.add_argument("--storm-seconds", type=int, help="Answer every request with 429 for this long")
        parser.add_argument(
            "--retry-after", type=int, default=60, help="Retry-After during the storm (default 60)"
        )
        parser.add_argument("--reset", action="store_true", help="Switch every fault off first")

    def handle(self, *args, **options):
        organization = organization_from_arg(options["org"])
        knobs = {
            "error_rate": options["error_rate"],
            "error_statuses": options["error_statuses"],
            "added_latency_ms": options["latency_ms"],
            "timeout_rate": options["timeout_rate"],
            "timeout_seconds": options["timeout_seconds"],
        }
        try:
            if options["reset"]:
                services.sandbox_faults_reset(organization=organization)
            changes = {k: v for k, v in knobs.items() if v is not None}
            if changes:
                services.sandbox_faults_set(organization=organization, **changes)
            if options["storm_seconds"]:
                services.sandbox_storm_start(
                    organization=organization,
                    seconds=options["storm_seconds"],
                    retry_after=options["retry_after"],
                )
        except (ValidationError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        organization.refresh_from_db()
        self.stdout.write(
            f"{organization.name}: error_rate={organization.error_rate} statuses={organization.error_statuses} "
            f"latency_ms={organization.added_latency_ms} timeout_rate={organization.timeout_rate} "
            f"timeout_seconds={organization.timeout_seconds} storm_until={organization.storm_until or '-'} "
            f"retry_after={organization.storm_retry_after}"
        )
