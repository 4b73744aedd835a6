"""Before a direct create or a cancel: the Virtuous ids its payload names by our own ids.

A refund names its gift, a schedule its donor and a cancellation its schedule by source ids;
Virtuous wants its own. Each is looked up once and kept in the item's payload; a record Virtuous
does not have yet defers the item (``Deferred``) instead of failing it.
"""

from __future__ import annotations

from typing import Any

from integrations.types import Operation
from integrations.virtuous.client import VirtuousClient
from integrations.virtuous.errors import ErrorClass, VirtuousError
from sync.models import OutboundItem


class Deferred(Exception):
    """A write that depends on a record Virtuous has not created yet (refund before its gift)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def payload_without(payload: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != key}


def reversed_gift_resolve(
    client: VirtuousClient, item: OutboundItem, payload: dict[str, Any]
) -> dict[str, Any]:
    """A refund names the gift by our transaction ids; Virtuous wants its gift id."""
    if payload.get("reversedGiftId"):
        return payload
    ref = payload.get("reversedTransaction") or {}
    try:
        gift = client.gift_get_by_transaction(ref["transactionSource"], ref["transactionId"])
    except VirtuousError as exc:
        if exc.error_class == ErrorClass.NOT_FOUND:
            raise Deferred(
                "The gift to reverse is not in Virtuous yet (the nightly batch has not run)"
            ) from exc
        raise
    resolved = {**payload_without(payload, "reversedTransaction"), "reversedGiftId": gift["id"]}
    OutboundItem.objects.filter(pk=item.pk).update(payload=resolved)  # resolved once, kept
    return resolved


def contact_id_resolve(client: VirtuousClient, item: OutboundItem, payload: dict[str, Any]) -> dict[str, Any]:
    """RecurringGift create takes a contactId (no embedded matching): find the donor first."""
    if payload.get("contactId"):
        return payload
    ref = payload.get("contact") or {}
    contact = client.contact_find(
        reference_source=ref.get("referenceSource"), reference_id=ref.get("referenceId")
    ) or (client.contact_find(email=ref["email"]) if ref.get("email") else None)
    if not contact:
        raise Deferred("The donor is not in Virtuous yet (the nightly batch has not run)")
    resolved = {**payload_without(payload, "contact"), "contactId": contact["id"]}
    OutboundItem.objects.filter(pk=item.pk).update(payload=resolved)
    return resolved


def recurring_gift_id_resolve(item: OutboundItem, payload: dict[str, Any]) -> dict[str, Any]:
    """A cancellation names the schedule by our ids; its Virtuous id is known once we created it
    (RecurringGift create answers synchronously with the id)."""
    if payload.get("recurringGiftId"):
        return payload
    ref = payload.get("recurringGiftTransaction") or {}
    created = OutboundItem.objects.filter(
        tenant_id=item.tenant_id,
        operation=Operation.RECURRING_GIFT_CREATE,
        external_source=ref.get("transactionSource"),
        external_id=ref.get("transactionId"),
    ).first()
    if created is None:
        raise VirtuousError(ErrorClass.PERMANENT, "Cancel for a recurring gift this platform never created")
    if not created.virtuous_id:
        raise Deferred("The recurring gift is not created in Virtuous yet")
    resolved = {
        **payload_without(payload, "recurringGiftTransaction"),
        "recurringGiftId": int(created.virtuous_id),
    }
    OutboundItem.objects.filter(pk=item.pk).update(payload=resolved)
    return resolved
