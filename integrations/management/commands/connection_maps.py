from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from integrations.models import Connection
from integrations.project_maps import ProjectMapInvalid, connection_project_map_update
from integrations.registry import provider_get
from integrations.selectors import connection_get
from tenants.management.base import CLI, TenantCommand, tenant_from_arg


class Command(TenantCommand):
    help = (
        "Show a connection's project map (source campaign or form id → Virtuous project code) and its "
        "default project, or change them: --set KEY=CODE, --unset KEY (both repeatable), --default CODE "
        '(--default "" clears it). Checked as the admin page checks its rows, and audited.'
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("connection", help="The connection's public id")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=CODE", dest="rows")
        parser.add_argument("--unset", action="append", default=[], metavar="KEY")
        parser.add_argument("--default", default=None, metavar="CODE", help="The default project code")

    def handle(self, *args, **options):
        tenant = tenant_from_arg(options["tenant"])
        try:
            connection = connection_get(tenant=tenant, public_id=options["connection"])
        except (Connection.DoesNotExist, ValidationError) as exc:
            raise CommandError(f"{tenant.slug} has no connection {options['connection']!r}.") from exc
        rows = []
        for pair in options["rows"]:
            key, sep, code = pair.partition("=")
            if not sep:
                raise CommandError(f"--set {pair!r}: expected SOURCE_KEY=PROJECT_CODE")
            rows.append((key, code))
        if rows or options["unset"] or options["default"] is not None:
            keys = [key.strip() for key, _ in rows]
            repeated = sorted({key for key in keys if keys.count(key) > 1})
            if repeated:
                raise CommandError(f"--set gives {', '.join(map(repr, repeated))} more than once; keep one.")
            try:
                diff = connection_project_map_update(
                    connection=connection,
                    actor=CLI,
                    set_rows=dict(rows),
                    unset=tuple(key.strip() for key in options["unset"]),
                    default_project_code=options["default"],
                )
            except ProjectMapInvalid as exc:
                raise CommandError("\n".join(["Not changed:", *exc.errors])) from exc
            self.stdout.write(f"Updated the project map of {connection}." if diff else "Nothing to change.")
        self.stdout.write(
            f"Default project: {connection.default_project_code or '(none: unmapped is an error)'}"
        )
        mapping = connection.project_code_map or {}
        if not mapping:
            self.stdout.write("No rows.")
        for key in sorted(mapping):
            self.stdout.write(f"  {key} → {mapping[key]}")
        help_text = provider_get(connection.provider).project_key_help
        if help_text:
            self.stdout.write(f"Source keys: {help_text}")
