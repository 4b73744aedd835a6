import json

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from integrations.common.connection_settings import SettingsInvalid
from integrations.management.commands.connection_create import settings_error_text, settings_from_args
from integrations.models import Connection
from integrations.registry import connection_settings, provider_get
from integrations.selectors import connection_get
from integrations.services import connection_settings_update
from tenants.management.base import CLI, TenantCommand, tenant_from_arg


class Command(TenantCommand):
    help = (
        "Show a connection's settings (as stored, and as used with defaults), or change them with "
        "--set KEY=VALUE / --unset KEY. Changes are validated against the provider's schema and audited."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("connection", help="The connection's public id")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="changes")
        parser.add_argument("--unset", action="append", default=[], metavar="KEY")

    def handle(self, *args, **options):
        tenant = tenant_from_arg(options["tenant"])
        try:
            connection = connection_get(tenant=tenant, public_id=options["connection"])
        except (Connection.DoesNotExist, ValidationError) as exc:
            raise CommandError(f"{tenant.slug} has no connection {options['connection']!r}.") from exc
        if options["changes"] or options["unset"]:
            try:
                connection_settings_update(
                    connection=connection,
                    changes=settings_from_args(options["changes"]),
                    unset=tuple(options["unset"]),
                    actor=CLI,
                )
            except SettingsInvalid as exc:
                raise CommandError(settings_error_text(exc, connection.provider)) from exc
            self.stdout.write(f"Updated the settings of {connection}.")
        self.stdout.write("Stored: " + json.dumps(connection.settings, sort_keys=True))
        self.stdout.write("In use: " + json.dumps(connection_settings(connection), sort_keys=True))
        for line in provider_get(connection.provider).settings_schema.describe():
            self.stdout.write(f"  {line}")
