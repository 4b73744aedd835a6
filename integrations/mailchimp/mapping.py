"""Mailchimp → Virtuous. Pure functions: a normalised delivery in, Contact Transactions out.

The contact's reference is the subscriber hash (MD5 of the lower-cased address, Mailchimp's own
member id), computed here for webhooks and polls alike so both paths name the same contact.
Each write's queue key carries a fingerprint of its payload: the same member state seen by a
webhook and by a poll is one queue item, a later change is a new one. Opt-outs become a Contact
Transaction carrying an opt-out tag (and a custom field when configured): see
``integrations.common.contacts`` and docs/decisions.md.
"""

from __future__ import annotations

import hashlib
from typing import Any

from integrations.common.contacts import (
    contact_fields,
    contact_request,
    opt_out_fields,
    require_email,
    with_tags,
)
from integrations.common.mapping import MappingContext
from integrations.types import MappingError, Outcome

TAG_PREFIX = "Mailchimp"
MEMBER_TAG_PREFIX = "MC"


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 of the lower-cased address (an id, not a secret)."""
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


def _audience_tags(ctx: MappingContext, list_id: Any) -> list[str]:
    name = (ctx.settings.get("audiences") or {}).get(str(list_id or ""))
    return [f"{TAG_PREFIX}: {name}"] if name else []


def _address(merges: dict[str, Any]) -> dict[str, Any]:
    """ADDRESS is a group (addr1, addr2, city, state, zip, country) or, on old audiences, a string."""
    address = merges.get("ADDRESS")
    if isinstance(address, dict):
        return {
            "address1": address.get("addr1"),
            "address2": address.get("addr2"),
            "city": address.get("city"),
            "state": address.get("state"),
            "postal": address.get("zip"),
            "country": address.get("country"),
        }
    return {"address1": address}


def _subscriber(
    ctx: MappingContext, *, email: Any, merges: Any, list_id: Any, reference: str | None = None
) -> dict[str, Any]:
    """The Contact Transaction fields a subscriber carries, identical for webhooks and polls."""
    address = require_email(email)
    merges = merges if isinstance(merges, dict) else {}
    return contact_fields(
        ctx,
        reference=reference or subscriber_hash(address),
        email=address,
        first_name=merges.get("FNAME"),
        last_name=merges.get("LNAME"),
        phone=merges.get("PHONE"),
        tags=_audience_tags(ctx, list_id),
        **_address(merges),
    )


def subscribed(ctx: MappingContext, payload: dict[str, Any]) -> Outcome:
    """subscribe / profile: create or update the contact (a pending member is held)."""
    data = payload["data"]
    if str(data.get("status") or "").lower() == "pending":
        return _held(data.get("email"))
    fields = _subscriber(ctx, email=data.get("email"), merges=data.get("merges"), list_id=data.get("list_id"))
    return Outcome(requests=[contact_request(ctx, fields)])


def unsubscribed(ctx: MappingContext, payload: dict[str, Any]) -> Outcome:
    """unsubscribe / cleaned: the opt-out, on the same contact reference."""
    data = payload["data"]
    reason = "Cleaned" if payload["type"] == "cleaned" else "Unsubscribed"
    fields = _subscriber(ctx, email=data.get("email"), merges=data.get("merges"), list_id=data.get("list_id"))
    fields = opt_out_fields(ctx, fields, prefix=TAG_PREFIX, reason=reason, detail=data.get("reason"))
    return Outcome(requests=[contact_request(ctx, fields)])


def email_changed(ctx: MappingContext, payload: dict[str, Any]) -> Outcome:
    """upemail: the new address on the contact known by the old address's reference."""
    data = payload["data"]
    old = require_email(data.get("old_email"))
    fields = _subscriber(
        ctx,
        email=data.get("new_email"),
        merges={},
        list_id=data.get("list_id"),
        reference=subscriber_hash(old),
    )
    return Outcome(
        requests=[contact_request(ctx, fields)],
        note="E-mail changed; later events for the new address carry its own reference "
        "and match this contact by e-mail.",
    )


def member(ctx: MappingContext, payload: dict[str, Any]) -> Outcome:
    """A polled list member, mapped by its status exactly as the matching webhook would be."""
    data = payload["data"]
    status = str(data.get("status") or "").lower()
    email = data.get("email_address")
    if status == "pending":
        return _held(email)
    if status in ("archived", "transactional"):
        return Outcome(
            note=f"Member is {status} in Mailchimp: nothing to write (contacts are never deleted)."
        )
    if status not in ("subscribed", "unsubscribed", "cleaned"):
        raise MappingError(f"Unknown Mailchimp member status {status[:40]!r}")
    fields = _subscriber(ctx, email=email, merges=data.get("merge_fields"), list_id=data.get("list_id"))
    if status != "subscribed":
        fields = opt_out_fields(ctx, fields, prefix=TAG_PREFIX, reason=status.capitalize(), detail=None)
        return Outcome(requests=[contact_request(ctx, fields)])
    requests = [contact_request(ctx, fields)]
    member_tags = [
        f"{MEMBER_TAG_PREFIX}: {tag['name']}"
        for tag in data.get("tags") or []
        if isinstance(tag, dict) and tag.get("name")
    ]
    if member_tags:
        # Webhooks never carry member tags, so the tags go in a second write: the first stays
        # identical to what the webhook path produces (one queue item), this one adds the tags.
        requests.append(contact_request(ctx, with_tags(fields, member_tags)))
    return Outcome(requests=requests)


def _held(email: Any) -> Outcome:
    shown = str(email or "(no e-mail)")[:80]
    return Outcome(
        note=f"{shown} is pending double opt-in: held, nothing written until Mailchimp shows it subscribed."
    )


HANDLERS = {
    "subscribe": subscribed,
    "profile": subscribed,
    "unsubscribe": unsubscribed,
    "cleaned": unsubscribed,
    "upemail": email_changed,
    "member": member,
}
