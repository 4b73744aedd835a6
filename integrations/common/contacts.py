"""Contact Transaction building shared by the e-mail platforms (Mailchimp, Constant Contact).

These platforms sync people, not money: every change is a Contact Transaction keyed on the
platform's stable member id. Three rules live here so every such provider applies them the same way:

- **Versioned queue keys.** The outbound queue keeps a key forever, so a contact's second change
  needs a second key: ``contact_transaction:<source>:<reference>:<fingerprint of the payload>``.
  The same state captured twice (webhook and poll, or two polls) is one queue item.
- **Opt-outs** are a tag ``"<Platform>: Unsubscribed"`` (or ``Cleaned``), plus the connection's
  ``opt_out_custom_field`` set to the reason when configured. A Contact Transaction cannot set
  ``isOptedIn`` on an e-mail ContactMethod (the recipe's GET-then-PUT is a direct write the
  submitter does not make); see docs/decisions.md.
- **Clear refusals.** A value too long for Virtuous, or an address that is not one, is a
  ``MappingError`` (the event goes to review), never a truncated donor record.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from integrations.common.mapping import MappingContext
from integrations.types import MappingError, Operation, OutboundRequest

MAX_LENGTHS = {
    "email": 254,
    "firstName": 100,
    "lastName": 100,
    "phone": 50,
    "address1": 255,
    "address2": 255,
    "city": 100,
    "state": 100,
    "postal": 20,
    "country": 100,
    "tags": 2000,
}


def require_email(value: Any) -> str:
    """A plausible e-mail address, or a MappingError naming what was there instead."""
    text = str(value or "").strip()
    if "@" not in text or any(c.isspace() for c in text):
        raise MappingError(f"Not an e-mail address: {text[:80]!r}")
    return text


def _clean(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _tag(text: str) -> str:
    # Virtuous reads ``tags`` as one semicolon-separated string.
    return text.replace(";", ",").strip()


def contact_fields(
    ctx: MappingContext,
    *,
    reference: str,
    email: str,
    first_name: Any = None,
    last_name: Any = None,
    phone: Any = None,
    address1: Any = None,
    address2: Any = None,
    city: Any = None,
    state: Any = None,
    postal: Any = None,
    country: Any = None,
    tags: list[str] | None = None,
) -> dict[str, Any]:
    """A Household Contact Transaction; blank fields are left out so they never erase data."""
    payload = {
        "referenceSource": ctx.source_name,
        "referenceId": reference,
        "contactType": "Household",
        "firstName": _clean(first_name),
        "lastName": _clean(last_name),
        "emailType": "Home Email",
        "email": email,
        "phoneType": "Home Phone" if _clean(phone) else "",
        "phone": _clean(phone),
        "address1": _clean(address1),
        "address2": _clean(address2),
        "city": _clean(city),
        "state": _clean(state),
        "postal": _clean(postal),
        "country": _clean(country),
    }
    payload = {k: v for k, v in payload.items() if v != ""}
    return with_tags(payload, tags or [])


def with_tags(payload: dict[str, Any], tags: list[str]) -> dict[str, Any]:
    """The payload with ``tags`` added (order kept, duplicates dropped)."""
    current = [t for t in (payload.get("tags") or "").split(";") if t]
    merged = list(dict.fromkeys([*current, *(_tag(t) for t in tags if _tag(t))]))
    result = {k: v for k, v in payload.items() if k != "tags"}
    if merged:
        result["tags"] = ";".join(merged)
    return result


def opt_out_fields(
    ctx: MappingContext, payload: dict[str, Any], *, prefix: str, reason: str, detail: Any
) -> dict[str, Any]:
    """The payload marked as opted out: a tag, plus the configured custom field if any."""
    result = with_tags(payload, [f"{prefix}: {reason}"])
    field = _clean(ctx.settings.get("opt_out_custom_field"))
    if field:
        note = f"{reason} in {prefix}" + (f" ({_clean(detail)[:100]})" if _clean(detail) else "")
        result["customFields"] = {**(result.get("customFields") or {}), field: note}
    return result


def contact_request(ctx: MappingContext, payload: dict[str, Any]) -> OutboundRequest:
    """The queue item for one contact state (see the module docstring for the key)."""
    for field, limit in MAX_LENGTHS.items():
        value = payload.get(field)
        if isinstance(value, str) and len(value) > limit:
            raise MappingError(f"{field} is {len(value)} characters; Virtuous takes at most {limit}")
    reference = payload["referenceId"]
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    version = hashlib.sha256(canonical.encode()).hexdigest()[:20]
    return OutboundRequest(
        Operation.CONTACT_TRANSACTION,
        ctx.source_name,
        reference,
        payload,
        idempotency_key=f"{Operation.CONTACT_TRANSACTION.value}:{ctx.source_name}:{reference}:{version}",
    )
