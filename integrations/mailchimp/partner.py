"""Mailchimp as a two-way partner: writing a Virtuous change back to the audience member.

One sequential partner drain per tenant keeps us inside Mailchimp's ten connections per account.
"""

from __future__ import annotations

import re
from typing import Any

from integrations.common.partners import PartnerWriteError
from integrations.common.secrets import connection_secret
from integrations.mailchimp.client import MailchimpClient, MailchimpError
from tenants.models import Credential

_SUBSCRIBER_HASH = re.compile(r"^[0-9a-f]{32}$")


def _api_key(connection: Any) -> str:
    secret = connection_secret(connection, Credential.Purpose.API_TOKEN)
    if not secret:
        raise PartnerWriteError(f"No {connection.provider} API token for {connection}", retryable=False)
    return secret


def mailchimp_write(connection: Any, partner_id: str, changes: dict[str, Any]) -> None:
    """PATCH the member's merge fields and status, then add/remove its tags (only ours)."""
    if not _SUBSCRIBER_HASH.match(partner_id):
        raise PartnerWriteError(f"Not a Mailchimp subscriber hash: {partner_id[:40]!r}", retryable=False)
    settings = connection.settings or {}
    list_id = str(settings.get("two_way_list_id") or next(iter(settings.get("audiences") or {}), ""))
    if not list_id:
        raise PartnerWriteError("No audience to write to (two_way_list_id or audiences)", retryable=False)
    client = MailchimpClient(api_key=_api_key(connection), tenant_label=connection.tenant.slug)
    body: dict[str, Any] = {}
    merge = {
        tag: changes[name] for name, tag in (("firstName", "FNAME"), ("lastName", "LNAME")) if name in changes
    }
    if merge:
        body["merge_fields"] = merge
    if changes.get("optedOut"):
        body["status"] = "unsubscribed"
    tags = [{"name": t, "status": "active"} for t in changes.get("tagsAdd", [])]
    tags += [{"name": t, "status": "inactive"} for t in changes.get("tagsRemove", [])]
    try:
        if body:
            client.member_update(list_id, partner_id, body)
        if tags:
            client.member_tags_update(list_id, partner_id, tags)
    except MailchimpError as exc:
        raise PartnerWriteError(str(exc), retryable=exc.retryable) from exc
