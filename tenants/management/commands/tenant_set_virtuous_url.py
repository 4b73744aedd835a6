from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from tenants.management.base import CLI, TenantCommand, read_secret_from_stdin, tenant_from_arg
from tenants.services import tenant_virtuous_url_change


class Command(TenantCommand):
    help = (
        "Point a tenant at another (allowed) Virtuous base URL. The API token for it is read from "
        "standard input: the stored token never follows a URL change."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--url", required=True, help="The new base URL; '' for the production Virtuous API"
        )

    def handle(self, *args, **options):
        tenant = tenant_from_arg(options["tenant"])
        token = read_secret_from_stdin(self.stdin, "Virtuous API token for the new URL: ")
        try:
            tenant_virtuous_url_change(tenant=tenant, base_url=options["url"], api_token=token, actor=CLI)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(f"{tenant.slug} now uses {options['url'] or 'the production Virtuous API'}.")
