"""Request validation and response shapes of the sandbox, in Virtuous's wire format.

Amounts are parsed to ``Decimal`` from strings or numbers and written back as strings (the
OpenAPI spec types them as strings), so no float ever touches money. Times go out as UTC ISO
8601 with a ``Z``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.dateparse import parse_date, parse_datetime

from integrations.sandbox.models import (
    WEBHOOK_TOGGLES,
    SandboxContact,
    SandboxGift,
    SandboxRecurringGift,
    SandboxWebhook,
)

CENT = Decimal("0.01")


class ApiError(Exception):
    """An error answered to the caller as Virtuous's error envelope."""

    def __init__(
        self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


def not_found(what: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"{what} was not found.")


def validation_error(details: list[dict[str, Any]], message: str = "The request is invalid.") -> ApiError:
    return ApiError(400, "VALIDATION_ERROR", message, details)


def detail(field: str, code: str, message: str) -> dict[str, str]:
    return {"field": field, "code": code, "message": message}


def parse_amount(value: Any, field: str, errors: list[dict[str, Any]], *, positive: bool) -> Decimal | None:
    """A money amount from a JSON string or number; at most two decimal places."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        errors.append(
            detail(field, "REQUIRED" if value is None else "INVALID", f"{field} must be an amount.")
        )
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        errors.append(detail(field, "INVALID", f"{field} is not a number."))
        return None
    if not amount.is_finite() or amount != amount.quantize(CENT) or abs(amount) >= Decimal("1e12"):
        errors.append(detail(field, "INVALID", f"{field} must have at most two decimal places."))
        return None
    if positive and amount <= 0:
        errors.append(detail(field, "INVALID", f"{field} must be greater than zero."))
        return None
    return amount.quantize(CENT)


def parse_day(value: Any, field: str, errors: list[dict[str, Any]]) -> dt.date | None:
    """A date from ``YYYY-MM-DD`` or an ISO datetime (its date part)."""
    if isinstance(value, str):
        text = value.strip()
        day = parse_date(text[:10]) if len(text) >= 10 else None
        if day is not None:
            return day
    errors.append(detail(field, "REQUIRED" if value in (None, "") else "INVALID", f"{field} must be a date."))
    return None


def parse_moment(value: Any, field: str, tz: dt.tzinfo) -> dt.datetime:
    """An ISO datetime for a query condition; a value without offset is in the org's time zone."""
    moment = parse_datetime(value) if isinstance(value, str) else None
    if moment is None:
        day = parse_date(value) if isinstance(value, str) else None
        if day is None:
            raise validation_error([detail(field, "INVALID", f"{value!r} is not a date or datetime.")])
        moment = dt.datetime.combine(day, dt.time())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment


def text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ("" if value is None else str(value))


def parse_designations(
    item: dict[str, Any], amount: Decimal | None, prefix: str, errors: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``designations`` or ``giftDesignations``; when present they must add up to the amount."""
    raw = item.get("designations")
    if raw in (None, []):
        raw = item.get("giftDesignations")
    if raw in (None, []):
        return []
    if not isinstance(raw, list):
        errors.append(detail(f"{prefix}designations", "INVALID", "designations must be a list."))
        return []
    result = []
    total = Decimal("0")
    for i, entry in enumerate(raw):
        field = f"{prefix}designations[{i}]"
        if not isinstance(entry, dict):
            errors.append(detail(field, "INVALID", "A designation must be an object."))
            continue
        project_code = text(entry.get("projectCode") or entry.get("code"))
        project_id = entry.get("projectId") or entry.get("id")
        accounting = text(entry.get("externalAccountingCode"))
        if not (project_code or project_id or accounting):
            errors.append(
                detail(
                    field, "REQUIRED", "A designation needs projectCode, projectId or externalAccountingCode."
                )
            )
        designated = parse_amount(
            entry.get("amountDesignated"), f"{field}.amountDesignated", errors, positive=False
        )
        if designated is not None:
            total += designated
        result.append(
            {
                "projectId": project_id,
                "projectCode": project_code or None,
                "externalAccountingCode": accounting or None,
                "amountDesignated": str(designated) if designated is not None else None,
            }
        )
    if amount is not None and len(errors) == 0 and total != amount:
        errors.append(
            detail(
                f"{prefix}designations",
                "DESIGNATION_SUM_MISMATCH",
                f"Designations add up to {total}, the amount is {amount}.",
            )
        )
    return result


def iso_utc(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _individuals_json(contact: SandboxContact) -> list[dict[str, Any]]:
    people = []
    for i, person in enumerate(contact.individuals):
        person_id = contact.pk * 1000 + i + 1
        methods = [
            {"id": person_id * 100 + j + 1, **method}
            for j, method in enumerate(person.get("contactMethods", []))
        ]
        people.append({**person, "id": person_id, "contactId": contact.pk, "contactMethods": methods})
    return people


def contact_json(contact: SandboxContact, references: list[tuple[str, str]], *, full: bool = True) -> dict:
    """The contact read shape (``GET /api/Contact/{id}``, FullContact, webhooks)."""
    if not full:
        return {
            "id": contact.pk,
            "contactType": contact.contact_type,
            "name": contact.name,
            "email": contact.email or None,
            "isArchived": contact.archived,
        }
    return {
        "id": contact.pk,
        "contactType": contact.contact_type,
        "isPrivate": False,
        "name": contact.name,
        "isArchived": contact.archived,
        "mergedIntoContactId": contact.merged_into_id,
        "address": contact.address or None,
        "contactIndividuals": _individuals_json(contact),
        "contactReferences": [{"source": s, "id": r} for s, r in references],
        "tags": [],
        "customFields": [],
        "createDateTimeUtc": iso_utc(contact.created_at),
        "modifiedDateTimeUtc": iso_utc(contact.modified_at),
    }


def gift_json(gift: SandboxGift, *, full: bool = True) -> dict[str, Any]:
    """The gift read shape; only the full one carries the transaction pair and designations."""
    if not full:
        return {
            "id": gift.pk,
            "contactId": gift.contact_id,
            "contactIndividualId": None,
            "giftType": gift.gift_type,
            "giftDate": gift.gift_date.isoformat(),
            "amount": str(gift.amount),
            "segment": None,
            "batch": gift.batch or None,
            "giftUrl": f"https://app.virtuoussoftware.com/Generosity/Gift/{gift.pk}",
            "culture": "en-US",
            "exchangeRate": None,
        }
    return {
        "id": gift.pk,
        "transactionSource": gift.transaction_source or None,
        "transactionId": gift.transaction_id or None,
        "contactId": gift.contact_id,
        "contactIndividualId": None,
        "contactPassthroughId": None,
        "giftType": gift.gift_type,
        "giftTypeFormatted": gift.gift_type,
        "giftDate": gift.gift_date.isoformat(),
        "giftDateFormatted": f"{gift.gift_date.month}/{gift.gift_date.day}/{gift.gift_date.year}",
        "amount": str(gift.amount),
        "currencyCode": gift.currency,
        "batch": gift.batch or None,
        "notes": gift.notes or None,
        "segmentCode": None,
        "recurringGiftTransactionId": gift.recurring_gift_transaction_id or None,
        "giftDesignations": gift.designations,
        "customFields": {},
        "createDateTimeUtc": iso_utc(gift.created_at),
        "modifiedDateTimeUtc": iso_utc(gift.modified_at),
    }


def recurring_json(recurring: SandboxRecurringGift) -> dict[str, Any]:
    return {
        "id": recurring.pk,
        "transactionSource": recurring.transaction_source or None,
        "transactionId": recurring.transaction_id or None,
        "contactId": recurring.contact_id,
        "startDate": recurring.start_date.isoformat(),
        "amount": str(recurring.amount),
        "frequency": recurring.frequency,
        "nextExpectedPaymentDate": (
            recurring.next_expected_payment_date.isoformat() if recurring.next_expected_payment_date else None
        ),
        "status": recurring.status,
        "cancelDateTimeUtc": iso_utc(recurring.cancel_at),
        "cancelReason": recurring.cancel_reason or None,
        "designations": recurring.designations,
        "createDateTimeUtc": iso_utc(recurring.created_at),
        "modifiedDateTimeUtc": iso_utc(recurring.modified_at),
    }


def webhook_json(hook: SandboxWebhook) -> dict[str, Any]:
    """A subscription as the API echoes it; the secret is never echoed back."""
    return {
        "id": hook.pk,
        "payloadUrl": hook.payload_url,
        "active": hook.active,
        **{name: bool(hook.toggles.get(name)) for name in WEBHOOK_TOGGLES},
        "createDateTimeUtc": iso_utc(hook.created_at),
        "modifiedDateTimeUtc": iso_utc(hook.modified_at),
    }
