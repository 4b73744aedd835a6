"""What the fake Virtuous accepts: the same checks as the Django sandbox on the transaction
bodies the drain sends, and Virtuous's error envelope."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list[dict] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or []

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def invalid(details: list[dict], message: str = "The request is invalid.") -> ApiError:
    return ApiError(400, "VALIDATION_ERROR", message, details)


def not_found(what: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"{what} was not found.")


def text(value: Any) -> str:
    return str(value).strip() if value not in (None, "") else ""


def valid_amount(value: Any, name: str, errors: list[dict], *, positive: bool = True) -> Decimal | None:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        errors.append({"field": name, "code": "INVALID", "message": f"{name} must be a number."})
        return None
    if not amount.is_finite() or (positive and amount <= 0) or amount < 0:
        errors.append({"field": name, "code": "INVALID", "message": f"{name} must be positive."})
        return None
    return amount


def valid_day(value: Any, name: str, errors: list[dict]) -> str:
    day = text(value)[:10]
    if len(day) != 10 or day[4] != "-" or day[7] != "-" or not day.replace("-", "").isdigit():
        errors.append({"field": name, "code": "INVALID", "message": f"{name} must be a date (YYYY-MM-DD)."})
    return day


def gift_validate(item: Any, defaults: dict[str, Any], prefix: str) -> tuple[tuple[str, str], dict]:
    """One Gift Transaction, as strictly as the Django sandbox: the pair, a positive amount, a
    date, a contact signal, and designations (if any) that add up to the amount."""
    if not isinstance(item, dict):
        raise invalid([{"field": prefix or "body", "code": "INVALID", "message": "must be an object"}])
    item = {**{k: v for k, v in defaults.items() if v not in (None, "")}, **item}
    errors: list[dict] = []
    source, tid = text(item.get("transactionSource")), text(item.get("transactionId"))
    if not source or not tid:
        errors.append({"field": f"{prefix}transactionId", "code": "REQUIRED", "message": "pair required"})
    amount = valid_amount(item.get("amount"), f"{prefix}amount", errors)
    day = valid_day(item.get("giftDate"), f"{prefix}giftDate", errors)
    contact = item.get("contact")
    if not isinstance(contact, dict) or not (
        text(contact.get("referenceId")) or text(contact.get("email")) or contact.get("id")
    ):
        errors.append({"field": f"{prefix}contact", "code": "REQUIRED", "message": "contact required"})
        contact = {}
    designations = item.get("designations") or item.get("giftDesignations") or []
    if not isinstance(designations, list):
        errors.append({"field": f"{prefix}designations", "code": "INVALID", "message": "must be a list"})
        designations = []
    if designations and amount is not None:
        total = Decimal(0)
        for i, d in enumerate(designations):
            field_name = f"{prefix}designations[{i}]"
            if not isinstance(d, dict):
                errors.append({"field": field_name, "code": "INVALID", "message": "must be an object"})
                continue
            total += valid_amount(d.get("amountDesignated"), field_name, errors, positive=False) or 0
        if not errors and total != amount:
            errors.append({"field": f"{prefix}designations", "code": "INVALID", "message": "sum != amount"})
    if errors:
        raise invalid(errors)
    fields = {
        "amount": str(amount),
        "giftDate": day,
        "giftType": text(item.get("giftType")) or "Cash",
        "contactReferenceId": text(contact.get("referenceId")),
        "contactEmail": text(contact.get("email")).lower(),
    }
    return (source, tid), fields


def contact_validate(item: Any, reference_source: str, prefix: str) -> tuple[tuple[str, str], dict]:
    if not isinstance(item, dict):
        raise invalid([{"field": prefix or "body", "code": "INVALID", "message": "must be an object"}])
    source = text(item.get("referenceSource")) or reference_source
    ref, email = text(item.get("referenceId")), text(item.get("email")).lower()
    errors = []
    if not source or not ref:
        errors.append({"field": f"{prefix}referenceId", "code": "REQUIRED", "message": "pair required"})
    if email and "@" not in email:
        errors.append({"field": f"{prefix}email", "code": "INVALID", "message": "not an e-mail address"})
    if not (text(item.get("name")) or text(item.get("lastName")) or text(item.get("firstName")) or email):
        errors.append({"field": f"{prefix}name", "code": "REQUIRED", "message": "a name or email"})
    if errors:
        raise invalid(errors)
    return (source, ref), {"email": email}


def validate_all(items: Any, name: str, check) -> list[tuple[tuple[str, str], dict]]:
    """Every item first: one bad item rejects the whole call and nothing is stored."""
    if not isinstance(items, list) or not items:
        raise invalid([{"field": name, "code": "REQUIRED", "message": f"{name} must be a non-empty list"}])
    good, errors = [], []
    for i, item in enumerate(items):
        try:
            good.append(check(item, f"{name}[{i}]."))
        except ApiError as exc:
            errors.extend({**d, "index": i} for d in exc.details)
    if errors:
        raise invalid(errors, "Some items are invalid; nothing was stored.")
    return good
