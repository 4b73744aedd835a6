from django.core.management.base import CommandError
from django.utils.dateparse import parse_datetime

from tenants import services
from tenants.management.base import CLI, TenantCommand, read_secret_from_stdin, tenant_from_arg
from tenants.models import Credential
from tenants.platforms import credential_platforms, credential_scope_check


class Command(TenantCommand):
    help = "Set a tenant's secret for a platform and purpose. The secret is read from standard input."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("platform", choices=sorted(credential_platforms()))
        parser.add_argument("purpose", choices=Credential.Purpose.values)
        parser.add_argument("--scope", default="", help="Limit to one connection (its public id)")
        parser.add_argument(
            "--pending", action="store_true", help="Add beside the active secret (rotation overlap)"
        )
        parser.add_argument("--expires-at", default=None, help="ISO-8601 expiry (OAuth tokens)")

    def handle(self, *args, **options):
        tenant = tenant_from_arg(options["tenant"])
        expires_at = None
        if options["expires_at"]:
            expires_at = parse_datetime(options["expires_at"])
            if expires_at is None or expires_at.tzinfo is None:
                raise CommandError("--expires-at must be an ISO-8601 datetime with a time zone.")
        try:
            owner = credential_scope_check(
                tenant=tenant,
                platform=options["platform"],
                purpose=options["purpose"],
                scope=options["scope"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        secret = read_secret_from_stdin(self.stdin, f"{options['platform']} {options['purpose']}: ")
        try:
            cred = services.credential_set(
                tenant=tenant,
                platform=options["platform"],
                purpose=options["purpose"],
                scope=options["scope"],
                secret=secret,
                activate=not options["pending"],
                expires_at=expires_at,
                actor=CLI,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Stored {cred.platform} {cred.purpose} for {owner} as {cred.state} (…{cred.last4})"
        )
