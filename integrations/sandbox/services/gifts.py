"""Sandbox gifts: direct creates and gifts made from transactions by the nightly batch."""

import datetime as dt
from decimal import Decimal
from typing import Any

from django.utils import timezone

from integrations.sandbox import payloads
from integrations.sandbox.limits import counters_add
from integrations.sandbox.models import (
    SandboxContact,
    SandboxGift,
    SandboxOrganization,
)
from integrations.sandbox.payloads import text
from integrations.sandbox.services.contacts import contact_by_email, contact_by_reference, contact_survivor
from integrations.sandbox.webhooks import webhooks_deliver

# --- gifts --------------------------------------------------------------------------------


def gift_contact(organization: SandboxOrganization, payload: dict[str, Any]) -> SandboxContact | None:
    """Match the gift's contact block: id, then reference (with the transaction source), then e-mail."""
    block = payload.get("contact") or {}
    contact = None
    if isinstance(block.get("id"), int):
        contact = SandboxContact.objects.filter(organization=organization, pk=block["id"]).first()
    if contact is None and text(block.get("referenceId")):
        contact = contact_by_reference(
            organization=organization,
            source=text(block.get("referenceSource")) or payload["transactionSource"],
            reference_id=text(block["referenceId"]),
        )
    contact = contact_survivor(contact)
    if contact is None:
        contact = contact_by_email(organization=organization, email=text(block.get("email")))
    return contact


def sandbox_gift_create(
    *,
    organization: SandboxOrganization,
    contact_id: int,
    amount: Decimal,
    gift_date: dt.date,
    gift_type: str = "Cash",
    designations: list[dict[str, Any]] | None = None,
    batch: str = "",
    transaction_source: str = "",
    transaction_id: str = "",
    notes: str = "",
) -> SandboxGift:
    """A gift entered directly in Virtuous (not through a transaction); fires giftCreate now."""
    contact = SandboxContact.objects.filter(organization=organization, pk=contact_id).first()
    if contact is None:
        raise payloads.not_found("Contact")
    now = timezone.now()
    gift = SandboxGift.objects.create(
        organization=organization,
        contact=contact,
        amount=amount,
        gift_date=gift_date,
        gift_type=gift_type,
        designations=designations or [],
        batch=batch,
        transaction_source=transaction_source,
        transaction_id=transaction_id,
        notes=notes,
        created_at=now,
        modified_at=now,
    )
    counters_add(organization_id=organization.pk, gifts_created=1)
    webhooks_deliver(organization=organization, events=[("giftCreate", payloads.gift_json(gift))])
    return gift


def gift_from_transaction_create(
    organization: SandboxOrganization, payload: dict[str, Any], contact: SandboxContact, now: dt.datetime
) -> SandboxGift:
    return SandboxGift.objects.create(
        organization=organization,
        transaction_source=payload["transactionSource"],
        transaction_id=payload["transactionId"],
        contact=contact,
        amount=Decimal(payload["amount"]),
        gift_date=dt.date.fromisoformat(payload["giftDate"]),
        gift_type=payload["giftType"],
        currency=payload["currencyCode"][:3],
        batch=payload["batch"],
        notes=text(payload.get("notes")),
        designations=payload["designations"],
        recurring_gift_transaction_id=text(payload.get("recurringGiftTransactionId")),
        created_at=now,
        modified_at=now,
    )


def gift_get(*, organization: SandboxOrganization, **lookup: Any) -> SandboxGift:
    gift = SandboxGift.objects.filter(organization=organization, **lookup).first()
    if gift is None:
        raise payloads.not_found("Gift")
    return gift
