"""Constant Contact → Virtuous. Pure functions: a polled contact or a partner notification in.

A contact becomes a Contact Transaction keyed on its GUID (``referenceId``), with its lists as
"CC: <list name>" tags and the same versioned queue keys and opt-out mapping as Mailchimp
(``integrations.common.contacts``). Contacts waiting for confirmation are held; deleted
contacts are never deleted in Virtuous. Partner notifications only describe the account: a
cancelled or disabled account goes to a person, tier changes are noted.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from integrations.common.contacts import contact_fields, contact_request, opt_out_fields, require_email
from integrations.common.mapping import MappingContext
from integrations.types import MappingError, Outcome

TAG_PREFIX = "Constant Contact"
LIST_TAG_PREFIX = "CC"
_GUID = re.compile(r"^[0-9a-fA-F-]{8,64}$")
_ACCOUNT = re.compile(r"/accounts/([^/]+)")


def _first(rows: Any) -> dict[str, Any]:
    return rows[0] if isinstance(rows, list) and rows and isinstance(rows[0], dict) else {}


def contact(ctx: MappingContext, payload: dict[str, Any]) -> Outcome:
    """One polled contact, mapped by its e-mail permission."""
    data = payload["data"]
    record = data.get("contact")
    if not isinstance(record, dict):
        raise MappingError("Polled record has no contact")
    reference = str(record.get("contact_id") or "")
    if not _GUID.match(reference):
        raise MappingError(f"Contact id is not a GUID: {reference[:60]!r}")
    if record.get("deleted_at"):
        return Outcome(note="Deleted in Constant Contact: nothing written (contacts are never deleted).")
    email = record.get("email_address") if isinstance(record.get("email_address"), dict) else {}
    if not email.get("address"):
        return Outcome(note="Contact has no e-mail address: nothing to sync.")
    permission = str(email.get("permission_to_send") or "").lower()
    if permission == "pending_confirmation":
        return Outcome(
            note=f"{str(email['address'])[:80]} is pending confirmation: held, nothing written until confirmed."
        )
    names = data.get("list_names") if isinstance(data.get("list_names"), dict) else {}
    lists = [m for m in record.get("list_memberships") or [] if isinstance(m, str)]
    street = _first(record.get("street_addresses"))
    lines = str(street.get("street") or "").splitlines()
    fields = contact_fields(
        ctx,
        reference=reference,
        email=require_email(email.get("address")),
        first_name=record.get("first_name"),
        last_name=record.get("last_name"),
        phone=_first(record.get("phone_numbers")).get("phone_number"),
        address1=lines[0] if lines else None,
        address2=" ".join(lines[1:]) or None,
        city=street.get("city"),
        state=street.get("state"),
        postal=street.get("postal_code"),
        country=street.get("country"),
        tags=[f"{LIST_TAG_PREFIX}: {names.get(i) or i}" for i in lists],
    )
    if permission == "unsubscribed" or email.get("opt_out_date"):
        fields = opt_out_fields(
            ctx, fields, prefix=TAG_PREFIX, reason="Unsubscribed", detail=email.get("opt_out_reason")
        )
    return Outcome(requests=[contact_request(ctx, fields)])


def _concerns_this_account(ctx: MappingContext, url: str) -> bool:
    match = _ACCOUNT.search(urlsplit(url).path)
    expected = str(ctx.settings.get("account_id") or "")
    return not expected or (match is not None and match.group(1) == expected)


def account_lost(ctx: MappingContext, payload: dict[str, Any]) -> Outcome:
    """account.cancel / account.disable: a person must decide what happens to the connection."""
    url = payload["data"]["url"]
    if not _concerns_this_account(ctx, url):
        return Outcome(note=f"{payload['type']} for another Constant Contact account")
    return Outcome(
        review_reason=f"Constant Contact reports {payload['type']} for this account ({url[:200]}): "
        "polling will fail; pause or deactivate the connection."
    )


def tier_changed(ctx: MappingContext, payload: dict[str, Any]) -> Outcome:
    """tier.increase / tier.decrease: billing only, nothing to sync."""
    return Outcome(note=f"{payload['type']}: billing tier changed; nothing to sync")


HANDLERS = {
    "contact": contact,
    "account.cancel": account_lost,
    "account.disable": account_lost,
    "tier.increase": tier_changed,
    "tier.decrease": tier_changed,
}
