"""Change a tenant's settings from a shell: the same fields and checks as the admin's tenant page."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from tenants import services
from tenants.management.base import CLI, TenantCommand, tenant_from_arg
from tenants.models import Tenant

# Every tenant setting the admin edits, except those with their own command or flow: the Virtuous
# URL and token (tenant_set_virtuous_url, credential_set), status (tenant_pause/tenant_resume),
# the webhook id (virtuous_subscribe) and staff assignments (the admin's Access section).
SETTABLE = (
    "name",
    "virtuous_time_zone",
    "source_name",
    "virtuous_signature_header",
    "virtuous_signature_encoding",
    "hourly_request_budget",
    "budget_headroom_percent",
    "bulk_reserve_percent",
    "batching_enabled",
    "batch_size",
    "retry_base_seconds",
    "retry_cap_seconds",
    "retry_max_attempts",
    "inbound_mode",
    "conflict_policy",
    "inbound_cooldown_seconds",
    "alert_emails",
    "alert_webhook_url",
    "retention_webhook_body_days",
    "retention_attempt_days",
    "retention_dead_letter_days",
)


def _describe(name: str) -> str:
    field = Tenant._meta.get_field(name)
    kind = (
        "one of " + ", ".join(str(v) for v, _ in field.choices)
        if field.choices
        else {"BooleanField": "true/false"}.get(field.get_internal_type(), field.get_internal_type())
    )
    return f"  {name} ({kind})"


def _parse(name: str, raw: str):
    field = Tenant._meta.get_field(name)
    if field.get_internal_type() == "BooleanField":
        lowered = raw.strip().lower()
        if lowered not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            raise CommandError(f"{name}: expected true or false, not {raw!r}")
        return lowered in ("true", "yes", "on", "1")
    if raw == "" and field.null:
        return None
    try:
        return field.to_python(raw.strip())
    except ValidationError as exc:
        raise CommandError(f"{name}: {'; '.join(exc.messages)}") from exc


class Command(TenantCommand):
    help = (
        "Show a tenant's settings, or change them with KEY=VALUE pairs (inbound_mode=observe "
        "batching_enabled=false conflict_policy=...). Validated like the admin form and audited."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("changes", nargs="*", metavar="KEY=VALUE")

    def handle(self, *args, **options):
        tenant = tenant_from_arg(options["tenant"])
        changes = {}
        for pair in options["changes"]:
            key, sep, value = pair.partition("=")
            key = key.strip()
            if not sep or key not in SETTABLE:
                raise CommandError(
                    f"{pair!r}: expected KEY=VALUE with one of these keys:\n"
                    + "\n".join(_describe(n) for n in SETTABLE)
                )
            changes[key] = _parse(key, value)
        if changes:
            try:
                services.tenant_update(tenant=tenant, actor=CLI, changes=changes)
            except ValidationError as exc:
                lines = [f"  {f}: {'; '.join(m)}" for f, m in exc.message_dict.items()]
                raise CommandError("Invalid tenant settings:\n" + "\n".join(lines)) from exc
            self.stdout.write(f"Updated {', '.join(sorted(changes))} of {tenant.slug}.")
        for name in SETTABLE:
            self.stdout.write(f"{name}={getattr(tenant, name)}")
