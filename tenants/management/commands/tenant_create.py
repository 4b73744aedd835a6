from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from tenants import services
from tenants.management.base import CLI, StdinCommand, read_secret_from_stdin


class Command(StdinCommand):
    help = "Create a tenant (a nonprofit). The Virtuous token, if any, is read from standard input."

    def add_arguments(self, parser):
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--virtuous-token",
            nargs="?",
            const="-",
            default=None,
            metavar="-",
            help="Read the tenant's Virtuous API token from standard input (give no value, or '-').",
        )
        parser.add_argument("--virtuous-url", default="", help="Virtuous API base URL (default: production)")
        parser.add_argument(
            "--budget-per-hour", type=int, default=None, help="Virtuous requests/hour (default 5000)"
        )

    def handle(self, *args, **options):
        token = None
        if options["virtuous_token"] is not None:
            if options["virtuous_token"] != "-":
                raise CommandError(
                    "Refusing a token on the command line (it would stay in shell history and `ps`). "
                    'Pipe it instead: echo "$TOKEN" | manage.py tenant_create ... --virtuous-token'
                )
            token = read_secret_from_stdin(self.stdin, "Virtuous API token: ")
        if options["budget_per_hour"] is not None and options["budget_per_hour"] <= 0:
            raise CommandError("--budget-per-hour must be a positive number.")
        try:
            tenant = services.tenant_create(
                slug=options["slug"],
                name=options["name"],
                virtuous_base_url=options["virtuous_url"],
                hourly_request_budget=options["budget_per_hour"],
                virtuous_token=token,
                actor=CLI,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        self.stdout.write(f"Created tenant {tenant.slug} ({tenant.public_id})")
