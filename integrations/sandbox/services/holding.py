"""The holding state: validating Contact and Gift transactions and keeping them for the nightly batch;
the direct ReversingTransaction create."""

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from integrations.sandbox import payloads
from integrations.sandbox.limits import counters_add
from integrations.sandbox.models import (
    SandboxGift,
    SandboxOrganization,
    SandboxTransaction,
)
from integrations.sandbox.payloads import detail, text, validation_error
from integrations.sandbox.webhooks import webhooks_deliver

Kind = SandboxTransaction.Kind
State = SandboxTransaction.State


# --- the holding state --------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """One item for the holding state: its idempotency key and its normalised payload."""

    source: str
    external_id: str
    payload: dict[str, Any]


def contact_transaction_validate(item: Any, *, reference_source: str = "", prefix: str = "") -> Submission:
    """Check one Contact Transaction item; raises ``ApiError`` with every problem found."""
    if not isinstance(item, dict):
        raise validation_error([detail(prefix or "body", "INVALID", "A contact must be an object.")])
    errors: list[dict[str, Any]] = []
    source = text(item.get("referenceSource")) or reference_source
    reference_id = text(item.get("referenceId"))
    if not source:
        errors.append(detail(f"{prefix}referenceSource", "REQUIRED", "referenceSource is required."))
    if not reference_id:
        errors.append(detail(f"{prefix}referenceId", "REQUIRED", "referenceId is required."))
    email = text(item.get("email"))
    if email and "@" not in email:
        errors.append(detail(f"{prefix}email", "INVALID", "email is not an e-mail address."))
    if not (text(item.get("name")) or text(item.get("lastName")) or text(item.get("firstName")) or email):
        errors.append(detail(f"{prefix}name", "REQUIRED", "A name, firstName/lastName or email is required."))
    if errors:
        raise validation_error(errors)
    return Submission(source, reference_id, {**item, "referenceSource": source, "referenceId": reference_id})


def gift_transaction_validate(
    item: Any, *, defaults: dict[str, Any] | None = None, prefix: str = ""
) -> Submission:
    """Check one Gift Transaction item (batch defaults fill the gaps); raises ``ApiError``."""
    if not isinstance(item, dict):
        raise validation_error([detail(prefix or "body", "INVALID", "A transaction must be an object.")])
    item = {**{k: v for k, v in (defaults or {}).items() if v not in (None, "")}, **item}
    errors: list[dict[str, Any]] = []
    source = text(item.get("transactionSource"))
    transaction_id = text(item.get("transactionId"))
    if not source:
        errors.append(detail(f"{prefix}transactionSource", "REQUIRED", "transactionSource is required."))
    if not transaction_id:
        errors.append(detail(f"{prefix}transactionId", "REQUIRED", "transactionId is required."))
    amount = payloads.parse_amount(item.get("amount"), f"{prefix}amount", errors, positive=True)
    gift_date = payloads.parse_day(item.get("giftDate"), f"{prefix}giftDate", errors)
    contact = item.get("contact")
    if not isinstance(contact, dict) or not (
        text(contact.get("referenceId")) or text(contact.get("email")) or contact.get("id")
    ):
        errors.append(
            detail(f"{prefix}contact", "REQUIRED", "contact with referenceId, email or id is required.")
        )
    designations = payloads.parse_designations(item, amount, prefix, errors)
    if errors:
        raise validation_error(errors)
    normalised = {
        **item,
        "transactionSource": source,
        "transactionId": transaction_id,
        "amount": str(amount),
        "giftDate": gift_date.isoformat(),
        "giftType": text(item.get("giftType")) or "Cash",
        "currencyCode": text(item.get("currencyCode")) or "USD",
        "batch": text(item.get("batch")),
        "designations": designations,
    }
    normalised.pop("giftDesignations", None)
    return Submission(source, transaction_id, normalised)


def sandbox_reversal_create(*, organization: SandboxOrganization, body: Any) -> SandboxGift:
    """``Gift/ReversingTransaction``: offset an existing, non-reversal gift at once.

    A direct create, so nothing is keyed: a second request for the same gift makes a second
    reversal (the docs give no duplicate check, and the stricter reading is none).
    """
    if not isinstance(body, dict):
        raise validation_error([detail("body", "INVALID", "The body must be an object.")])
    errors: list[dict[str, Any]] = []
    gift_id = body.get("reversedGiftId")
    gift_date = payloads.parse_day(body.get("giftDate"), "giftDate", errors)
    original = None
    if isinstance(gift_id, int) and not isinstance(gift_id, bool):
        original = SandboxGift.objects.filter(organization=organization, pk=gift_id).first()
    if original is None:
        errors.append(
            detail("reversedGiftId", "NOT_FOUND", "reversedGiftId must be a gift of this organisation.")
        )
    elif original.reversed_gift_id is not None:
        errors.append(detail("reversedGiftId", "INVALID", "A reversing gift cannot be reversed."))
    if errors:
        raise validation_error(errors)
    now = timezone.now()
    reversal = SandboxGift.objects.create(
        organization=organization,
        contact_id=original.contact_id,
        amount=-original.amount,
        gift_date=gift_date,
        gift_type="ReversingTransaction",
        currency=original.currency,
        batch=original.batch,
        notes=text(body.get("notes")),
        designations=[
            {**d, "amountDesignated": str(-Decimal(d["amountDesignated"]))}
            for d in original.designations
            if d.get("amountDesignated") is not None
        ],
        reversed_gift=original,
        created_at=now,
        modified_at=now,
    )
    counters_add(organization_id=organization.pk, gifts_created=1)
    webhooks_deliver(organization=organization, events=[("giftCreate", payloads.gift_json(reversal))])
    return reversal


def sandbox_transactions_submit(
    *, organization: SandboxOrganization, kind: str, submissions: list[Submission]
) -> tuple[int, int]:
    """Put validated items in the holding state; returns (received, duplicates).

    A key seen before (or twice in one call) never makes a second row: it bumps
    ``submit_count``. A resubmitted contact replaces the held payload and goes back to held,
    so the next batch applies the newer data; gifts and reversals keep their first payload.
    The caller counts the returned numbers (the API view adds them to the request's counters).
    """
    latest: dict[tuple[str, str], Submission] = {}
    occurrences: Counter[tuple[str, str]] = Counter()
    for sub in submissions:
        key = (sub.source, sub.external_id)
        occurrences[key] += 1
        latest.setdefault(key, sub)
        if kind == Kind.CONTACT:
            latest[key] = sub
    with transaction.atomic():
        existing = {
            (row.source, row.external_id)
            for row in SandboxTransaction.objects.filter(
                organization=organization,
                kind=kind,
                source__in={k[0] for k in latest},
                external_id__in={k[1] for k in latest},
            ).only("source", "external_id")
        }
        new_keys = [k for k in latest if k not in existing]
        try:
            with transaction.atomic():
                SandboxTransaction.objects.bulk_create(
                    [
                        SandboxTransaction(
                            organization=organization,
                            kind=kind,
                            source=k[0],
                            external_id=k[1],
                            payload=latest[k].payload,
                        )
                        for k in new_keys
                    ]
                )
        except IntegrityError:
            # Another process stored some of these keys since we looked: one at a time instead.
            new_keys = [k for k in new_keys if _create_one(organization, kind, latest[k])]
        duplicates = sum(occurrences.values()) - len(new_keys)
        for key, count in occurrences.items():
            repeats = count - (1 if key in new_keys else 0)
            if repeats:
                _record_resubmission(organization, kind, latest[key], repeats)
    return len(submissions), duplicates


def _create_one(organization: SandboxOrganization, kind: str, sub: Submission) -> bool:
    try:
        with transaction.atomic():
            SandboxTransaction.objects.create(
                organization=organization,
                kind=kind,
                source=sub.source,
                external_id=sub.external_id,
                payload=sub.payload,
            )
    except IntegrityError:
        return False
    return True


def _record_resubmission(organization: SandboxOrganization, kind: str, sub: Submission, repeats: int) -> None:
    changes: dict[str, Any] = {"submit_count": F("submit_count") + repeats}
    if kind == Kind.CONTACT:
        changes.update(payload=sub.payload, state=State.HELD, processed_at=None)
    SandboxTransaction.objects.filter(
        organization=organization, kind=kind, source=sub.source, external_id=sub.external_id
    ).update(**changes)
