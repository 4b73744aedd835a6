"""Fix and replay as a form: labelled fields for the mapped record, checked against Virtuous's
rules before anything is queued, and the change shown as a diff before it is confirmed.

The form never builds a payload from scratch: it edits the fields it shows on a copy of the
queued payload, so everything else (ids, notes, custom fields) goes back exactly as it was. The
replay itself goes through ``sync.outbound.deadletters.dead_letter_replay`` (audited, identity
fields guarded there too).
"""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from typing import Any

from django import forms
from django.core.validators import EmailValidator

from integrations.models import Connection
from integrations.types import Operation
from sync.admin.deadletter_text import FIELD_LABELS, cause
from sync.models import DeadLetter
from tenants.models import Tenant

CENT = Decimal("0.01")
MAX_DESIGNATIONS = 10

# The editable fields per operation: (form field, payload path, label, kind).
GIFT_FIELDS = [
    ("amount", "amount", "Amount", "money"),
    ("gift_date", "giftDate", "Gift date", "date"),
    ("currency", "currencyCode", "Currency", "currency"),
    ("gift_type", "giftType", "Gift type", "text"),
    ("donor_first_name", "contact.firstName", "Donor first name", "text"),
    ("donor_last_name", "contact.lastName", "Donor last name", "text"),
    ("donor_email", "contact.email", "Donor e-mail", "email"),
]
RECURRING_FIELDS = [
    ("amount", "amount", "Amount", "money"),
    ("start_date", "startDate", "Start date", "date"),
    ("frequency", "frequency", "Frequency", "text"),
    ("donor_email", "contact.email", "Donor e-mail", "email"),
]
CONTACT_FIELDS = [
    ("first_name", "firstName", "First name", "text"),
    ("last_name", "lastName", "Last name", "text"),
    ("name", "name", "Name (organisations)", "text"),
    ("email", "email", "E-mail", "email"),
    ("phone", "phone", "Phone", "text"),
    ("address1", "address1", "Address", "text"),
    ("city", "city", "City", "text"),
    ("state", "state", "State", "text"),
    ("postal", "postal", "Postal code", "text"),
    ("country", "country", "Country", "text"),
]
FIELDS = {
    Operation.GIFT_TRANSACTION: GIFT_FIELDS,
    Operation.RECURRING_GIFT_CREATE: RECURRING_FIELDS,
    Operation.CONTACT_TRANSACTION: CONTACT_FIELDS,
}
HAS_DESIGNATIONS = {Operation.GIFT_TRANSACTION, Operation.RECURRING_GIFT_CREATE}


def tenant_project_codes(tenant: Tenant) -> list[str]:
    """The tenant's project list: every Virtuous project code its connections map to or default to."""
    codes: set[str] = set()
    for mapping, default in Connection.objects.filter(tenant=tenant).values_list(
        "project_code_map", "default_project_code"
    ):
        if isinstance(mapping, dict):
            codes |= {str(v).strip() for v in mapping.values() if str(v).strip()}
        if default:
            codes.add(default.strip())
    return sorted(codes)


def path_get(payload: dict[str, Any], path: str) -> Any:
    value: Any = payload
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def path_set(payload: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    target = payload
    for part in parts[:-1]:
        if not isinstance(target.get(part), dict):
            target[part] = {}
        target = target[part]
    target[parts[-1]] = value


def designations_key(payload: dict[str, Any]) -> str:
    """Virtuous takes ``designations`` or ``giftDesignations``; keep the one the mapping used."""
    return (
        "giftDesignations"
        if "giftDesignations" in payload and "designations" not in payload
        else "designations"
    )


def _form_field(kind: str, label: str) -> forms.Field:
    if kind == "money":
        return forms.DecimalField(label=label, max_digits=14, decimal_places=2, min_value=CENT)
    if kind == "date":
        return forms.DateField(label=label, widget=forms.DateInput(attrs={"type": "date"}))
    if kind == "currency":
        return forms.RegexField(
            label=label,
            regex=r"^[A-Za-z]{3}$",
            error_messages={"invalid": "A three-letter currency code, e.g. USD."},
            widget=forms.TextInput(attrs={"size": 4}),
        )
    if kind == "email":
        return forms.EmailField(label=label, required=False)
    return forms.CharField(label=label, required=False, max_length=200)


def record_form_class(operation: str, payload: dict[str, Any]) -> type[forms.Form]:
    """The labelled fields of this operation; contact fields only where the record has them (or
    the basic ones), so the form is never a wall of empty boxes."""
    fields: dict[str, forms.Field] = {}
    for name, path, label, kind in FIELDS.get(operation, []):
        if (
            kind == "text"
            and path_get(payload, path) in (None, "")
            and name
            not in (
                "first_name",
                "last_name",
                "email",
                "donor_first_name",
                "donor_last_name",
            )
        ):
            continue
        field = _form_field(kind, label)
        if kind == "currency" and path_get(payload, path) in (None, ""):
            field.required = False
        fields[name] = field
    fields["note"] = forms.CharField(
        max_length=500,
        required=True,
        label="What was wrong",
        help_text="Recorded with your name, e.g. 'Designation corrected to the gift amount'.",
    )
    return type("RecordFixForm", (forms.Form,), fields)


def record_initial(operation: str, payload: dict[str, Any]) -> dict[str, Any]:
    initial = {}
    for name, path, _label, kind in FIELDS.get(operation, []):
        value = path_get(payload, path)
        if value is None:
            continue
        initial[name] = str(value)[:10] if kind == "date" else value
    return initial


class DesignationForm(forms.Form):
    project_code = forms.CharField(max_length=64, label="Project code")
    amount = forms.DecimalField(max_digits=14, decimal_places=2, min_value=CENT, label="Amount designated")


DesignationFormSet = forms.formset_factory(
    DesignationForm, extra=1, max_num=MAX_DESIGNATIONS, validate_max=True
)


def designations_initial(payload: dict[str, Any]) -> list[dict[str, Any]]:
    raw = payload.get(designations_key(payload)) or []
    return [
        {"project_code": d.get("projectCode") or "", "amount": d.get("amountDesignated")}
        for d in raw
        if isinstance(d, dict)
    ]


class FixInvalid(ValueError):
    """The record breaks one of Virtuous's rules; ``errors`` maps a form field ('' = the record)."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(errors.values()))


def fixed_payload(
    *,
    dead_letter: DeadLetter,
    payload: dict[str, Any],
    data: dict[str, Any],
    designations: list[dict[str, Any]] | None,
    known_codes: list[str],
) -> dict[str, Any]:
    """The queued payload with the form's values written in, checked against Virtuous's rules.

    Raises FixInvalid naming each field that would be refused: amount above zero with at most
    two decimals, designations that add up to the amount, project codes on the tenant's list
    (and not the one Virtuous just refused), a plausible e-mail address.
    """
    new = copy.deepcopy(payload)
    errors: dict[str, str] = {}
    operation = dead_letter.operation_type
    for name, path, _label, kind in FIELDS.get(operation, []):
        if name not in data:
            continue
        value = data[name]
        if kind == "money":
            new_value: Any = str(value.quantize(CENT)) if value is not None else None
        elif kind == "date":
            new_value = value.isoformat() if value else None
        elif kind == "currency":
            new_value = value.upper() if value else None
        else:
            new_value = (value or "").strip()
        old = path_get(payload, path)
        if new_value in (None, "") and old in (None, ""):
            continue  # an empty box for a field the record never had
        path_set(new, path, new_value)
    if operation in HAS_DESIGNATIONS and designations is not None:
        refused = _refused_codes(dead_letter, payload)
        amount = Decimal(str(new.get("amount") or "0"))
        total = Decimal("0")
        rows = []
        for d in designations:
            code = d["project_code"].strip()
            if known_codes and code not in known_codes:
                errors["designations"] = (
                    f"Project code {code} is not on this customer's project list ({', '.join(known_codes)})."
                )
            elif code in refused:
                errors["designations"] = f"Virtuous refused project code {code}; choose another."
            total += d["amount"]
            rows.append({"projectCode": code, "amountDesignated": str(d["amount"].quantize(CENT))})
        if not rows:
            errors["designations"] = "A gift needs at least one designation (which project it is for)."
        elif total != amount:
            errors["designations"] = (
                f"The designations add up to {total:,.2f} but the amount is {amount:,.2f}: "
                "Virtuous refuses a gift whose designations do not add up."
            )
        old_rows = payload.get(designations_key(payload)) or []
        merged = []
        for i, row in enumerate(rows):
            base = dict(old_rows[i]) if i < len(old_rows) and isinstance(old_rows[i], dict) else {}
            if base.get("projectCode") != row["projectCode"]:
                base.pop("projectId", None)  # a stale id would override the corrected code
            merged.append({**base, **row})
        new[designations_key(payload)] = merged
    for name, path, _label, kind in FIELDS.get(operation, []):
        if kind == "email" and path_get(new, path):
            try:
                EmailValidator()(path_get(new, path))
            except forms.ValidationError:
                errors[name] = "Not an e-mail address."
    if errors:
        raise FixInvalid(errors)
    return new


def _refused_codes(dead_letter: DeadLetter, payload: dict[str, Any]) -> set[str]:
    """Project codes Virtuous named in its refusal of this very record."""
    found = cause(dead_letter, payload)
    return {found.project_code} if found.kind == "unknown_project" and found.project_code else set()


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(field, before, after) for every value that changed, labelled as a person reads them."""
    flat_old, flat_new = _flatten(old), _flatten(new)
    rows = []
    for key in sorted(set(flat_old) | set(flat_new), key=_order):
        before, after = flat_old.get(key, ""), flat_new.get(key, "")
        if before != after:
            rows.append((_path_label(key), before or "(empty)", after or "(empty)"))
    return rows


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        parts = [_flatten(v, f"{prefix}.{k}" if prefix else str(k)) for k, v in value.items()]
    elif isinstance(value, list):
        parts = [_flatten(v, f"{prefix}[{i}]") for i, v in enumerate(value)]
    else:
        return {prefix: "" if value is None else str(value)}
    return {k: v for part in parts for k, v in part.items()}


def _order(key: str) -> tuple[int, str]:
    plain = re.sub(r"\[\d+\]", "", key)
    order = list(FIELD_LABELS)
    return (order.index(plain) if plain in order else len(order), key)


def _path_label(key: str) -> str:
    plain = re.sub(r"\[\d+\]", "", key)
    label = FIELD_LABELS.get(plain) or FIELD_LABELS.get(plain.split(".")[-1], key)
    index = re.search(r"\[(\d+)\]", key)
    return f"{label} (designation {int(index.group(1)) + 1})" if index else label
