"""Dead letters in words: a one-line summary of the record, Virtuous's field errors as a list,
the cause they share with other dead letters, and the action that usually fixes that cause.

Pure functions of a dead letter and its payload, so the list, the detail page, the grouped view
and their tests read the same text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date

from integrations.types import Operation
from sync.models import DeadLetter
from sync.pii import MASK

CURRENCY_SYMBOLS = {"USD": "$", "CAD": "CA$", "AUD": "A$", "NZD": "NZ$", "GBP": "£", "EUR": "€", "JPY": "¥"}

# Virtuous's JSON keys as a person reads them (dotted paths, list indexes removed).
FIELD_LABELS = {
    "amount": "Amount",
    "giftDate": "Gift date",
    "startDate": "Start date",
    "currencyCode": "Currency",
    "giftType": "Gift type",
    "frequency": "Frequency",
    "designations": "Designations",
    "giftDesignations": "Designations",
    "designations.projectCode": "Project code",
    "designations.projectId": "Project",
    "designations.amountDesignated": "Designated amount",
    "contact": "Donor",
    "contact.email": "Donor e-mail",
    "contact.firstName": "Donor first name",
    "contact.lastName": "Donor last name",
    "contact.name": "Donor name",
    "contact.referenceId": "Donor reference",
    "email": "E-mail",
    "firstName": "First name",
    "lastName": "Last name",
    "name": "Name",
    "phone": "Phone",
    "address1": "Address",
    "city": "City",
    "state": "State",
    "postal": "Postal code",
    "country": "Country",
    "transactionId": "Source donation id",
    "transactionSource": "Source",
    "referenceId": "Donor reference",
    "referenceSource": "Source",
}


@dataclass(frozen=True)
class FieldError:
    field: str  # the label a person reads ("Project code"), or "" for the record as a whole
    message: str
    path: str = ""  # Virtuous's own path ("designations[0].projectCode")


def _money(amount: Any, currency: str) -> str:
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        return str(amount or "?")
    symbol = CURRENCY_SYMBOLS.get(currency.upper())
    return f"{symbol}{value:,.2f}" if symbol else f"{value:,.2f} {currency.upper()}"


def _day(value: Any) -> str:
    day = parse_date(str(value)[:10]) if value else None
    if day is None:
        return ""
    return day.strftime("%-d %b") if day.year == timezone.localdate().year else day.strftime("%-d %b %Y")


def donor_name(payload: dict[str, Any], *, show_pii: bool) -> str:
    """The donor as staff say it: name, else e-mail; masked for staff without the PII permission."""
    person = payload.get("contact") if isinstance(payload.get("contact"), dict) else payload
    name = (
        " ".join(str(person.get(k) or "").strip() for k in ("firstName", "lastName") if person.get(k))
        or str(person.get("name") or person.get("email") or "").strip()
    )
    if not name:
        return "an unnamed donor"
    return name if show_pii else MASK


def summary(dead_letter: DeadLetter, payload: dict[str, Any] | None, *, show_pii: bool) -> str:
    """ "$25.00 from Edsger Dijkstra via Donorbox, 27 Nov" (or the contact/schedule equivalent)."""
    payload = payload if isinstance(payload, dict) else {}
    source = str(payload.get("transactionSource") or payload.get("referenceSource") or "").strip()
    via = f" via {source}" if source else ""
    who = donor_name(payload, show_pii=show_pii)
    currency = str(payload.get("currencyCode") or "USD")
    if dead_letter.operation_type == Operation.CONTACT_TRANSACTION:
        return f"Donor record for {who}{via}"
    if dead_letter.operation_type == Operation.RECURRING_GIFT_CREATE:
        frequency = str(payload.get("frequency") or "").lower()
        day = _day(payload.get("startDate"))
        return (
            f"{_money(payload.get('amount'), currency)} {frequency} recurring gift from {who}{via}"
            + (f", starting {day}" if day else "")
        ).replace("  ", " ")
    if dead_letter.operation_type == Operation.GIFT_TRANSACTION:
        day = _day(payload.get("giftDate"))
        return f"{_money(payload.get('amount'), currency)} from {who}{via}" + (f", {day}" if day else "")
    return f"{dead_letter.get_operation_type_display()}{via}"


def _label(path: str) -> str:
    plain = re.sub(r"\[\d+\]", "", path or "").strip(".")
    plain = plain[0].lower() + plain[1:] if plain else plain  # Virtuous may answer "Amount" or "amount"
    return FIELD_LABELS.get(plain) or FIELD_LABELS.get(plain.split(".")[-1], plain)


def field_errors(dead_letter: DeadLetter) -> list[FieldError]:
    """Virtuous's own errors, one per field; the top-level message when it gave none."""
    errors = [
        FieldError(
            field=_label(str(d.get("field") or "")),
            message=str(d.get("message") or ""),
            path=str(d.get("field") or ""),
        )
        for d in dead_letter.error_details or []
        if isinstance(d, dict) and (d.get("message") or d.get("field"))
    ]
    if not errors and dead_letter.last_error:
        errors = [FieldError(field="", message=dead_letter.last_error)]
    return errors


def _designations(payload: dict[str, Any]) -> list[dict[str, Any]]:
    raw = payload.get("designations") or payload.get("giftDesignations") or []
    return [d for d in raw if isinstance(d, dict)] if isinstance(raw, list) else []


def _project_code_at(payload: dict[str, Any], path: str) -> str:
    designations = _designations(payload)
    index = re.search(r"\[(\d+)\]", path)
    if index and int(index.group(1)) < len(designations):
        return str(designations[int(index.group(1))].get("projectCode") or "")
    return ",".join(sorted({str(d.get("projectCode") or "") for d in designations if d.get("projectCode")}))


def _is_project_error(error: FieldError, code: str) -> bool:
    text = f"{error.path} {error.message} {code}".lower()
    return "project" in text and code != "DESIGNATION_SUM_MISMATCH"


@dataclass(frozen=True)
class Cause:
    key: str  # equal for dead letters that one fix would resolve
    text: str  # "project code GEN unknown"
    advice: str  # what usually fixes it
    kind: str  # designation_sum | unknown_project | invalid_field | auth | virtuous_down | other
    project_code: str = ""


ADVICE = {
    "designation_sum": "Open Fix and replay and make the designations add up to the gift amount "
    "(usually one designation of the whole amount).",
    "unknown_project": "Virtuous does not know this project code. Either ask the customer to create the "
    "project in Virtuous and Replay as-is, or change the code to a known project below (one action for "
    "every gift in the group) and map the campaign to it in the connection's project map so new gifts "
    "arrive right.",
    "invalid_field": "Open Fix and replay, correct the field Virtuous names, and replay. If every gift "
    "from this source has the same problem, the connection's field map needs changing too.",
    "auth": "Virtuous refused our key. Ask the customer for a new API key and store it on the tenant's "
    "Set up page, then Replay as-is.",
    "virtuous_down": "Virtuous was failing or unreachable every time we tried. Nothing is wrong with the "
    "gift: Replay as-is once Virtuous answers again.",
    "not_found": "Virtuous could not find something this record points at (a donor, a project or a "
    "schedule). Check it exists in Virtuous, then Replay as-is; if it never will, Discard with a reason.",
    "conflict": "Virtuous already has a conflicting record. Look the donor up in Virtuous; if the gift is "
    "there already, Discard with a reason, else Fix and replay.",
    "other": "Read Virtuous's answer above. If the record is wrong, Fix and replay; if Virtuous was at "
    "fault, Replay as-is; if it should never be sent, Discard with a reason.",
}


def cause(dead_letter: DeadLetter, payload: dict[str, Any] | None) -> Cause:
    """The one cause this dead letter's errors add up to, with its usual fix."""
    payload = payload if isinstance(payload, dict) else {}
    details = [d for d in dead_letter.error_details or [] if isinstance(d, dict)]
    errors = field_errors(dead_letter)
    codes = [str(d.get("code") or "") for d in details]
    status = dead_letter.status_code
    if "DESIGNATION_SUM_MISMATCH" in codes or any(
        "add up" in e.message.lower() and "designation" in e.message.lower() for e in errors
    ):
        return Cause(
            "designation_sum",
            "designations do not add up to the amount",
            ADVICE["designation_sum"],
            "designation_sum",
        )
    for error, code in zip(errors, codes or [""] * len(errors), strict=False):
        if _is_project_error(error, code) and re.search(
            r"unknown|not found|invalid|does not exist|no project", error.message.lower()
        ):
            project = _project_code_at(payload, error.path) or "?"
            return Cause(
                f"unknown_project:{project}",
                f"project code {project} unknown",
                ADVICE["unknown_project"],
                "unknown_project",
                project_code=project if project != "?" else "",
            )
    if status in (401, 403):
        return Cause("auth", "Virtuous refused our API key", ADVICE["auth"], "auth")
    if status is None or status >= 500 or status == 429:
        return Cause(
            "virtuous_down", "Virtuous unreachable or failing", ADVICE["virtuous_down"], "virtuous_down"
        )
    if status == 404:
        return Cause(
            "not_found", "something it refers to is missing in Virtuous", ADVICE["not_found"], "not_found"
        )
    if status == 409:
        return Cause("conflict", "conflicts with a record in Virtuous", ADVICE["conflict"], "conflict")
    fielded = [e for e in errors if e.path]
    if fielded:
        first = fielded[0]
        code = codes[errors.index(first)] if errors.index(first) < len(codes) else ""
        plain_path = re.sub(r"\[\d+\]", "", first.path)
        key = f"field:{plain_path}:{code or _digits_out(first.message)}"
        what = "missing" if code == "REQUIRED" else "not accepted"
        return Cause(key, f"{first.field.lower()} {what}", ADVICE["invalid_field"], "invalid_field")
    message = _digits_out(dead_letter.last_error)[:120]
    return Cause(f"other:{message}", message or "no answer recorded", ADVICE["other"], "other")


def _digits_out(text: str) -> str:
    """A message with its numbers and quoted values blurred, so per-record details group together."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "…", text or "")
    return re.sub(r"\d+(\.\d+)?", "#", text).strip()
