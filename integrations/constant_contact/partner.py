"""Constant Contact as a two-way partner: writing a Virtuous change back to the contact.

Every call goes through the application-wide throttle; when it has no room the writer raises
``Throttled`` (a ``PartnerThrottled``), so the drain releases its claims without spending attempts.
"""

from __future__ import annotations

import re
from typing import Any

from integrations.common.partners import PartnerWriteError
from integrations.constant_contact.client import ConstantContactClient, ConstantContactError
from integrations.constant_contact.throttle import ApplicationThrottle

_CONTACT_ID = re.compile(r"^[0-9a-fA-F-]{8,64}$")

# What a full-replace PUT must carry back so nothing else on the contact is lost.
CC_EDITABLE = (
    "email_address",
    "first_name",
    "last_name",
    "job_title",
    "company_name",
    "birthday_month",
    "birthday_day",
    "anniversary",
    "custom_fields",
    "phone_numbers",
    "street_addresses",
    "list_memberships",
)


def constant_contact_write(connection: Any, partner_id: str, changes: dict[str, Any]) -> None:
    """Read the contact, change names, opt-out and list memberships ("CC: <list>" tags), PUT it back."""
    if not _CONTACT_ID.match(partner_id):
        raise PartnerWriteError(f"Not a Constant Contact id: {partner_id[:40]!r}", retryable=False)
    client = ConstantContactClient(
        connection, throttle=ApplicationThrottle(), tenant_label=connection.tenant.slug
    )
    try:
        current = client.contact(partner_id)
        body = {k: current[k] for k in CC_EDITABLE if k in current}
        body["update_source"] = "Account"
        if "firstName" in changes:
            body["first_name"] = changes["firstName"]
        if "lastName" in changes:
            body["last_name"] = changes["lastName"]
        if changes.get("optedOut"):
            body["email_address"] = {
                "address": (current.get("email_address") or {}).get("address"),
                "permission_to_send": "unsubscribed",
            }
        if changes.get("tagsAdd") or changes.get("tagsRemove"):
            ids = {name: list_id for list_id, name in client.list_names().items()}
            memberships = set(current.get("list_memberships") or [])
            memberships |= {ids[n] for n in changes.get("tagsAdd", []) if n in ids}
            memberships -= {ids[n] for n in changes.get("tagsRemove", []) if n in ids}
            body["list_memberships"] = sorted(memberships)
        client.contact_replace(partner_id, body)
    except ConstantContactError as exc:
        raise PartnerWriteError(str(exc), retryable=exc.retryable) from exc
