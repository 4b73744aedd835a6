import json

from django.conf import settings
from django.core.management.base import CommandError

from integrations.common.connection_settings import SettingsInvalid
from integrations.models import Connection
from integrations.registry import provider_get, provider_keys, secrets_required, setup_steps_for
from integrations.services import connection_create
from integrations.virtuous.services import connection_webhook_url
from tenants.management.base import CLI, TenantCommand, tenant_from_arg


class Command(TenantCommand):
    help = "Create a connection from a tenant to a source platform and print its webhook URL and setup steps."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("provider", choices=provider_keys())
        parser.add_argument(
            "--capture-mode", default=Connection.CaptureMode.WEBHOOK, choices=Connection.CaptureMode.values
        )
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--source-name", default="", help="transactionSource/referenceSource (default: provider's)"
        )
        parser.add_argument(
            "--default-project", default="", help="Virtuous project code for unmapped donations"
        )
        parser.add_argument(
            "--setting",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="A connection setting (repeatable); VALUE is read as JSON when it is JSON "
            '(300, {"id": "name"}), else as text. The provider\'s settings are listed on a bad one.',
        )

    def handle(self, *args, **options):
        tenant = tenant_from_arg(options["tenant"])
        try:
            connection = connection_create(
                tenant=tenant,
                provider=options["provider"],
                capture_mode=options["capture_mode"],
                name=options["name"],
                source_name=options["source_name"],
                default_project_code=options["default_project"],
                settings=settings_from_args(options["setting"]),
                actor=CLI,
            )
        except SettingsInvalid as exc:
            raise CommandError(settings_error_text(exc, options["provider"])) from exc
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        spec = provider_get(connection.provider)
        self.stdout.write(f"Created {spec.label} connection {connection.public_id} for {tenant.slug}")
        self.stdout.write(
            f"Webhook URL: {connection_webhook_url(connection=connection, base_url=settings.PUBLIC_BASE_URL)}"
        )
        needed = secrets_required(spec, connection.capture_mode)
        if needed:
            # Each line pastes as it is; the command then asks for the secret (never on argv).
            self.stdout.write("Store its secrets (each command asks for the value):")
            for purpose in needed:
                self.stdout.write(
                    f"python manage.py credential_set {tenant.slug} {spec.credential_platform} {purpose} "
                    f"--scope {connection.public_id}"
                )
        if spec.setup_steps:
            self.stdout.write(f"Setup: {setup_steps_for(connection)}")


def settings_from_args(pairs: list[str]) -> dict:
    """``["tolerance_seconds=300", "audiences={...}"]`` → a dict; a value that is not JSON is text."""
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--setting {pair!r}: expected KEY=VALUE")
        try:
            result[key.strip()] = json.loads(value)
        except ValueError:
            result[key.strip()] = value
    return result


def settings_error_text(exc: SettingsInvalid, provider: str) -> str:
    """One line per bad setting, then what the provider takes."""
    lines = [f"  {name}: {message}" for name, message in exc.errors.items()]
    reference = [f"  {line}" for line in provider_get(provider).settings_schema.describe()]
    return "\n".join(["Invalid connection settings:", *lines, "Settings this provider takes:", *reference])
