"""Recurring gifts: direct creates (not idempotent), reads, cancellation."""

from typing import Any

from django.utils import timezone

from integrations.sandbox import payloads
from integrations.sandbox.models import (
    SandboxContact,
    SandboxOrganization,
    SandboxRecurringGift,
)
from integrations.sandbox.payloads import detail, text, validation_error

# --- recurring gifts ----------------------------------------------------------------------


def sandbox_recurring_create(*, organization: SandboxOrganization, body: Any) -> SandboxRecurringGift:
    """Direct create on a known ``contactId``.

    Not idempotent, like Virtuous (spec 4.7: check before retrying a direct create): a repeated
    ``transactionSource``+``transactionId`` makes a second schedule.
    """
    if not isinstance(body, dict):
        raise validation_error([detail("body", "INVALID", "The body must be an object.")])
    errors: list[dict[str, Any]] = []
    contact_id = body.get("contactId")
    contact = None
    if isinstance(contact_id, int) and not isinstance(contact_id, bool):
        contact = SandboxContact.objects.filter(organization=organization, pk=contact_id).first()
    if contact is None:
        errors.append(detail("contactId", "NOT_FOUND", "contactId must be a contact of this organisation."))
    amount = payloads.parse_amount(body.get("amount"), "amount", errors, positive=True)
    start = payloads.parse_day(body.get("startDate"), "startDate", errors)
    next_payment = None
    if body.get("nextExpectedPaymentDate"):
        next_payment = payloads.parse_day(body["nextExpectedPaymentDate"], "nextExpectedPaymentDate", errors)
    designations = payloads.parse_designations(body, amount, "", errors)
    if errors:
        raise validation_error(errors)
    now = timezone.now()
    return SandboxRecurringGift.objects.create(
        organization=organization,
        contact=contact,
        transaction_source=text(body.get("transactionSource")),
        transaction_id=text(body.get("transactionId")),
        amount=amount,
        frequency=text(body.get("frequency")) or "Monthly",
        start_date=start,
        next_expected_payment_date=next_payment,
        designations=designations,
        created_at=now,
        modified_at=now,
    )


def recurring_get(*, organization: SandboxOrganization, recurring_id: int) -> SandboxRecurringGift:
    recurring = SandboxRecurringGift.objects.filter(organization=organization, pk=recurring_id).first()
    if recurring is None:
        raise payloads.not_found("Recurring gift")
    return recurring


def sandbox_recurring_cancel(
    *, organization: SandboxOrganization, recurring_id: int, reason: str = ""
) -> SandboxRecurringGift:
    """Cancel for good (sets ``cancelDateTimeUtc`` once; cancelling again changes nothing)."""
    now = timezone.now()
    SandboxRecurringGift.objects.filter(organization=organization, pk=recurring_id, cancel_at=None).update(
        cancel_at=now, status="Cancelled", cancel_reason=reason[:500], modified_at=now
    )
    return recurring_get(organization=organization, recurring_id=recurring_id)
