"""Applying changes that Virtuous reports (webhooks and inbound polling).

Source identification comes first: a gift whose ``transactionSource`` (or a contact carrying a
reference with a source) is one we write confirms the matching outbound item, stores the
Virtuous id, and stops. Changes made elsewhere are left to the two-way handler.
"""

from __future__ import annotations

from typing import Any

from integrations.selectors import tenant_write_sources
from integrations.virtuous.inbound import VirtuousChange
from sync.services.confirm import outbound_confirm
from tenants.models import Tenant


def virtuous_change_apply(*, tenant: Tenant, change: VirtuousChange) -> dict[str, Any]:
    """Returns a small result for the event row: what was recognised and confirmed."""
    ours = tenant_write_sources(tenant=tenant)
    record = change.record
    virtuous_id = str(record.get("id", ""))
    if change.resource == "gift":
        source = record.get("transactionSource") or ""
        if source in ours and record.get("transactionId"):
            confirmed = 0
            if change.event in ("giftCreate", "giftUpdate"):
                confirmed = outbound_confirm(
                    tenant=tenant,
                    kind="gift",
                    external_source=source,
                    external_id=str(record["transactionId"]),
                    virtuous_id=virtuous_id,
                )
            return {"origin": "ours", "confirmed": confirmed}
        return {"origin": "elsewhere", "confirmed": 0}
    references = [r for r in record.get("contactReferences") or [] if r.get("source") in ours]
    confirmed = 0
    for ref in references:
        confirmed += outbound_confirm(
            tenant=tenant,
            kind="contact",
            external_source=ref["source"],
            external_id=str(ref["id"]),
            virtuous_id=virtuous_id,
        )
    return {"origin": "ours" if references else "elsewhere", "confirmed": confirmed}
