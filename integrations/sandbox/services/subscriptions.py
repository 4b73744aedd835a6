"""Webhook subscriptions of a sandbox organisation."""

from typing import Any

from integrations.sandbox import payloads
from integrations.sandbox.models import (
    WEBHOOK_TOGGLES,
    SandboxOrganization,
    SandboxWebhook,
)
from integrations.sandbox.payloads import detail, text, validation_error

# --- webhook subscriptions ----------------------------------------------------------------


def _webhook_fields(body: Any, *, require_secret: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise validation_error([detail("body", "INVALID", "The body must be an object.")])
    errors = []
    url = text(body.get("payloadUrl"))
    if not url.startswith(("https://", "http://")):
        errors.append(detail("payloadUrl", "INVALID", "payloadUrl must be an http(s) URL."))
    secret = text(body.get("secret"))
    if require_secret and not secret:
        errors.append(detail("secret", "REQUIRED", "secret is required."))
    if errors:
        raise validation_error(errors)
    fields: dict[str, Any] = {
        "payload_url": url,
        "active": bool(body.get("active", True)),
        "toggles": {name: bool(body.get(name, False)) for name in WEBHOOK_TOGGLES},
    }
    if secret:
        fields["secret"] = secret
    return fields


def sandbox_webhook_create(*, organization: SandboxOrganization, body: Any) -> SandboxWebhook:
    """Subscribe; omitted toggles are off."""
    return SandboxWebhook.objects.create(
        organization=organization, **_webhook_fields(body, require_secret=True)
    )


def sandbox_webhook_get(*, organization: SandboxOrganization, webhook_id: int) -> SandboxWebhook:
    hook = SandboxWebhook.objects.filter(organization=organization, pk=webhook_id).first()
    if hook is None:
        raise payloads.not_found("Webhook")
    return hook


def sandbox_webhook_update(
    *, organization: SandboxOrganization, webhook_id: int, body: Any
) -> SandboxWebhook:
    """Full replace: toggles not sent are switched off; the secret changes only when sent."""
    hook = sandbox_webhook_get(organization=organization, webhook_id=webhook_id)
    for name, value in _webhook_fields(body, require_secret=False).items():
        setattr(hook, name, value)
    hook.save()
    return hook


def sandbox_webhook_set_active(
    *, organization: SandboxOrganization, webhook_id: int, active: bool
) -> SandboxWebhook:
    """Pause or resume; events while paused are dropped, not queued (as in Virtuous)."""
    hook = sandbox_webhook_get(organization=organization, webhook_id=webhook_id)
    hook.active = active
    hook.save(update_fields=["active", "modified_at"])
    return hook


def sandbox_webhook_delete(*, organization: SandboxOrganization, webhook_id: int) -> None:
    deleted, _ = SandboxWebhook.objects.filter(organization=organization, pk=webhook_id).delete()
    if not deleted:
        raise payloads.not_found("Webhook")
