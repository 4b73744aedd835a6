"""One registry of providers. Each provider is a folder under integrations/ with the same files
(webhooks.py, mapping.py, client.py, poller.py, partner.py where two-way) and a ``provider.py``
exposing ``PROVIDER``; adding one means a folder and a line here (docs/adding-a-provider.md).
Modules load lazily. What providers share lives in ``integrations.common``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from typing import Any

from integrations.common.connection_settings import SettingsInvalid, SettingsSchema
from integrations.common.mapping import Handler
from integrations.common.partners import PartnerSide
from integrations.common.polling import PollContext
from integrations.common.webhooks import VerifyResult
from integrations.types import ParsedEvent, WebhookRequest

PROVIDERS: dict[str, str] = {
    "virtuous": "integrations.virtuous.inbound",
    "auction": "integrations.auction.provider",
    "constant_contact": "integrations.constant_contact.provider",
    "donorbox": "integrations.donorbox.provider",
    "gofundme_pro": "integrations.gofundme_pro.provider",
    "mailchimp": "integrations.mailchimp.provider",
    "stripe": "integrations.stripe.provider",
}


@dataclass(frozen=True)
class ProviderSpec:
    key: str
    label: str
    credential_platform: str
    default_source_name: str
    content_types: tuple[str, ...]
    verify: Callable[[WebhookRequest, Any, list[str]], VerifyResult]
    parse: Callable[[WebhookRequest], ParsedEvent]
    load: Callable[[bytes, str], Any]
    handlers: Mapping[str, Handler]
    capture_modes: tuple[str, ...] = ("webhook",)
    poll: Callable[[Any, PollContext], int] | None = None
    handshake: Callable[[WebhookRequest, Any, list[str]], tuple[int, str]] | None = None
    setup_steps: str = ""
    # What a project map row's source key is for this provider, in words; "" when the provider
    # sends no donations and so maps no projects (the console then offers no rows).
    project_key_help: str = ""
    # What the onboarding form asks for: keys of Connection.settings, and the secrets (purposes).
    settings_fields: tuple[str, ...] = ()
    # Every key a connection's settings may hold: types, ranges, defaults (validated where typed,
    # read with defaults and clamping where used; see integrations/common/connection_settings.py).
    settings_schema: SettingsSchema = SettingsSchema()
    secret_purposes: tuple[str, ...] = ("webhook_secret",)
    # Which of them each capture path cannot work without: onboarding refuses to save a connection
    # missing one (a webhook connection without its signing secret refuses every delivery).
    webhook_secret_purposes: tuple[str, ...] = ("webhook_secret",)
    poll_secret_purposes: tuple[str, ...] = ()
    # "source": handlers map events to Virtuous writes; "crm": Virtuous itself, applied by the sync room.
    kind: str = "source"
    # Set for two-way partners: how Virtuous changes are written back (integrations.common.partners).
    partner: PartnerSide | None = None


def secrets_required(spec: ProviderSpec, capture_mode: str) -> tuple[str, ...]:
    """The secrets a connection of this capture mode needs before it can receive anything."""
    needed = []
    if capture_mode in ("webhook", "hybrid"):
        needed += spec.webhook_secret_purposes
    if capture_mode in ("polling", "hybrid"):
        needed += spec.poll_secret_purposes
    return tuple(dict.fromkeys(needed))


def setup_steps_for(connection: Any) -> str:
    """The provider's setup steps with this connection's real values, never placeholders."""
    return (
        provider_get(connection.provider)
        .setup_steps.replace(
            "/hooks/TOKEN/SECRET/", f"/hooks/{connection.webhook_token}/<the webhook secret>/"
        )
        .replace("CONNECTION_ID", str(connection.public_id))
        .replace("TENANT", connection.tenant.slug)
    )


@cache
def provider_get(key: str) -> ProviderSpec:
    try:
        path = PROVIDERS[key]
    except KeyError as exc:
        raise LookupError(f"Unknown provider {key!r}; known: {', '.join(sorted(PROVIDERS))}") from exc
    spec = import_module(path).PROVIDER
    if spec.key != key:
        raise LookupError(f"{path} declares provider {spec.key!r}, registered as {key!r}")
    return spec


def provider_keys() -> list[str]:
    return sorted(PROVIDERS)


def partner_keys() -> list[str]:
    """The providers with a partner side (two-way sync writes back to them)."""
    return [key for key in provider_keys() if provider_get(key).partner is not None]


def partner_get(key: str) -> PartnerSide | None:
    """A provider's partner side; None for an unknown provider or one that is not two-way."""
    return provider_get(key).partner if key in PROVIDERS else None


def credential_platforms() -> dict[str, str]:
    """Every credential platform a provider uses, with a label: what ``tenants`` validates
    credentials against (settings.CREDENTIAL_PLATFORMS names this function)."""
    return {provider_get(key).credential_platform: provider_get(key).label for key in provider_keys()}


def connection_settings_errors(connection: Any) -> dict[str, str]:
    """What is wrong with a connection's stored settings (setting name → message); {} when valid."""
    try:
        provider_get(connection.provider).settings_schema.validate(connection.settings)
    except SettingsInvalid as exc:
        return exc.errors
    return {}


def connection_settings(connection: Any) -> dict[str, Any]:
    """A connection's settings read through its provider's schema: every declared key, with
    defaults and clamping, so a stored value can never break the code that uses it."""
    return provider_get(connection.provider).settings_schema.read(connection.settings)
