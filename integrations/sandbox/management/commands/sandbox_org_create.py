from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from integrations.sandbox import services


class Command(BaseCommand):
    help = "Create a sandbox Virtuous organisation and print its API token (shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help='Organisation name; "(Sandbox)" is appended.')
        parser.add_argument("--time-zone", default="America/Chicago")
        parser.add_argument("--rate-limit", type=int, default=5000, help="Requests per window (default 5000)")
        parser.add_argument(
            "--window-seconds",
            type=int,
            default=3600,
            help="Rate-limit window (default 3600; shorter = faster clock)",
        )

    def handle(self, *args, **options):
        try:
            organization, token = services.sandbox_org_create(
                name=options["name"],
                time_zone=options["time_zone"],
                rate_limit=options["rate_limit"],
                window_seconds=options["window_seconds"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        self.stdout.write(f"Created sandbox organisation {organization.pk}: {organization.name}")
        self.stdout.write(f"Token (shown once): {token}")
