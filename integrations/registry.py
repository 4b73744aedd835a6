"""One registry of providers. Each provider is a folder under integrations/ with the same files
(webhooks.py, mapping.py, client.py, poller.py) and a ``provider.py`` exposing ``PROVIDER``;
adding one means copying a sibling folder and adding a line here. Modules load lazily.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib import import_module
from typing import Any

from integrations.common.connection_settings import SettingsInvalid, SettingsSchema
from integrations.types import (
    MalformedPayload,
    MappingError,
    Operation,
    OutboundRequest,
    Outcome,
    ParsedEvent,
    PolledRecord,
    WebhookRequest,
)

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
class VerifyResult:
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class MappingContext:
    """Everything a mapper may know about the tenant and connection; mapping stays pure."""

    tenant_slug: str
    time_zone: str
    source_name: str
    default_project_code: str = ""
    project_code_map: Mapping[str, str] = field(default_factory=dict)
    field_map: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_connection(cls, connection: Any) -> MappingContext:
        return cls(
            tenant_slug=connection.tenant.slug,
            time_zone=connection.tenant.virtuous_time_zone,
            source_name=connection.source_name,
            default_project_code=connection.default_project_code,
            project_code_map=dict(connection.project_code_map or {}),
            field_map=dict(connection.field_map or {}),
            settings=dict(connection.settings or {}),
        )

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    def local_date(self, moment: datetime) -> str:
        """The gift date Virtuous expects: the calendar day in the organisation's time zone."""
        return moment.astimezone(self.tz).date().isoformat()

    def reversal(self, gift_id: str, *, on: datetime, notes: str, key: str = "") -> OutboundRequest:
        """Reverse the gift we wrote as ``gift_id``. The submitter resolves its Virtuous id from our
        transaction ids, and waits while Virtuous does not hold the gift yet."""
        return OutboundRequest(
            Operation.REVERSING_TRANSACTION,
            self.source_name,
            key or f"{gift_id}-refund",
            {
                "reversedTransaction": {"transactionSource": self.source_name, "transactionId": gift_id},
                "giftDate": self.local_date(on),
                "notes": notes,
            },
        )

    def recurring_cancel(self, schedule_id: str, *, reason: str) -> OutboundRequest:
        """Cancel the recurring gift we created as ``schedule_id`` (resolved to its Virtuous id)."""
        return OutboundRequest(
            Operation.RECURRING_GIFT_CANCEL,
            self.source_name,
            f"{schedule_id}-cancel",
            {
                "recurringGiftTransaction": {
                    "transactionSource": self.source_name,
                    "transactionId": schedule_id,
                },
                "cancelReason": reason,
            },
        )

    def project_code(self, *keys: str | None) -> str:
        """Map the first known source key to a project code; unmapped is an error, never a guess."""
        for key in keys:
            if key is not None and str(key) in self.project_code_map:
                return self.project_code_map[str(key)]
        if self.default_project_code:
            return self.default_project_code
        shown = ", ".join(str(k) for k in keys if k) or "(none)"
        raise MappingError(
            f"No Virtuous project code is mapped for {shown} and the connection has no default."
        )


Handler = Callable[[MappingContext, dict[str, Any]], Outcome]

# What a mapper raises when a value is not what it expected (a missing key, a string where an
# object was, a date out of range, an amount that is not a number).
_DATA_ERRORS = (KeyError, IndexError, TypeError, ValueError, ArithmeticError, AttributeError)


def event_parse(spec: ProviderSpec, request: WebhookRequest) -> ParsedEvent:
    """Run a provider's parser; a value it did not expect (a date that is not a date) makes the
    delivery malformed (recorded with the reason), never a 500 that records nothing."""
    try:
        return spec.parse(request)
    except MalformedPayload:
        raise
    except _DATA_ERRORS as exc:
        raise MalformedPayload(f"Cannot read this payload: {type(exc).__name__}: {exc}"[:500]) from exc


def event_map(handler: Handler, context: MappingContext, payload: Any) -> Any:
    """Run one mapper. A value it did not expect is a MalformedPayload with the reason, never a
    crash: the same bytes would fail the same way on every retry, so a person must look."""
    try:
        return handler(context, payload)
    except (MappingError, MalformedPayload):
        raise
    except _DATA_ERRORS as exc:
        raise MalformedPayload(f"Cannot map this payload: {type(exc).__name__}: {exc}"[:500]) from exc


@dataclass(frozen=True)
class PollContext:
    """What a poller gets from the sync room: its checkpoints per resource, a way to save them
    (every 100 records, so an interrupted run resumes), a way to emit changes, and its secrets.

    Checkpoints are the *source-side* modified time plus an id tie-breaker, never wall-clock.
    """

    load_checkpoint: Callable[[str], tuple[datetime | None, str]]
    save_checkpoint: Callable[[str, datetime, str], None]
    emit: Callable[[PolledRecord], bool]
    secret: Callable[[str], str | None]
    mapping: MappingContext


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
    # What the onboarding form asks for: keys of Connection.settings, and the secrets (purposes).
    settings_fields: tuple[str, ...] = ()
    # Every key a connection's settings may hold: types, ranges, defaults (validated where typed,
    # read with defaults and clamping where used; see integrations/common/connection_settings.py).
    settings_schema: SettingsSchema = SettingsSchema()
    secret_purposes: tuple[str, ...] = ("webhook_secret",)
    # "source": handlers map events to Virtuous writes; "crm": Virtuous itself, applied by the sync room.
    kind: str = "source"


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
