"""``Contact/Query`` and ``Gift/Query``: filter groups (conditions AND, groups OR), sort, page.

Parameter and operator names are Virtuous's display names, case-sensitive; an unknown one is a
400, as a real organisation answers for names missing from its QueryOptions.
"""

from __future__ import annotations

import zoneinfo
from typing import Any

from django.db.models import Q, QuerySet

from integrations.sandbox import payloads
from integrations.sandbox.models import SandboxContact, SandboxGift, SandboxOrganization, SandboxRecurringGift
from integrations.sandbox.payloads import detail, validation_error

MAX_TAKE = 1000
DEFAULT_TAKE = 10

# parameter → (model field, value kind)
CONTACT_PARAMETERS = {
    "Last Modified Date": ("modified_at", "datetime"),
    "Create Date": ("created_at", "datetime"),
    "Contact Id": ("pk", "int"),
    "Email Address": ("email", "email"),
    "Contact Name": ("name", "text"),
}
GIFT_PARAMETERS = {
    "Last Modified Date": ("modified_at", "datetime"),
    "Create Date": ("created_at", "datetime"),
    "Gift Id": ("pk", "int"),
    "Contact Id": ("contact_id", "int"),
    "Batch": ("batch", "text"),
    "Gift Date": ("gift_date", "date"),
    "Amount": ("amount", "decimal"),
    "Transaction Source": ("transaction_source", "text"),
}
CONTACT_SORTS = {
    "Id": "pk",
    "Name": "name",
    "CreatedDateTime": "created_at",
    "ModifiedDateTime": "modified_at",
    "Last Modified Date": "modified_at",
}
GIFT_SORTS = {
    "Id": "pk",
    "Amount": "amount",
    "GiftDate": "gift_date",
    "Batch": "batch",
    "CreatedDateTime": "created_at",
    "ModifiedDateTime": "modified_at",
    "Last Modified Date": "modified_at",
}

_ORDERED_OPERATORS = {
    "Is After": "gt",
    "Is Before": "lt",
    "On Or After": "gte",
    "On Or Before": "lte",
    "Greater Than": "gt",
    "Less Than": "lt",
    "Greater Than Or Equal To": "gte",
    "Less Than Or Equal To": "lte",
    "Is": "exact",
    "Is Equal To": "exact",
    "On": "exact",
}
_TEXT_OPERATORS = {
    "Is": "exact",
    "Is Equal To": "exact",
    "Contains": "icontains",
    "Starts With": "istartswith",
}
_ALLOWED = {
    "datetime": {"Is After", "Is Before", "On Or After", "On Or Before", "Between"},
    "date": {"Is After", "Is Before", "On Or After", "On Or Before", "On", "Is", "Between"},
    "int": {
        "Is",
        "Is Equal To",
        "Greater Than",
        "Less Than",
        "Greater Than Or Equal To",
        "Less Than Or Equal To",
    },
    "decimal": {"Is", "Is Equal To", "Greater Than", "Less Than", "Between"},
    "text": set(_TEXT_OPERATORS) | {"Is Not", "Is Empty", "Is Not Empty"},
    "email": {"Is", "Is Equal To", "Contains"},
}


def page_params(query: dict[str, str]) -> tuple[int, int]:
    """``skip``/``take`` from the query string; take defaults to 10 and may not exceed 1000."""
    try:
        skip = int(query.get("skip", 0))
        take = int(query.get("take", DEFAULT_TAKE))
    except ValueError as exc:
        raise validation_error([detail("skip/take", "INVALID", "skip and take must be integers.")]) from exc
    if skip < 0 or take < 0 or take > MAX_TAKE:
        raise validation_error(
            [detail("take", "INVALID", f"skip must be >= 0 and take between 0 and {MAX_TAKE}.")]
        )
    return skip, take


def _value(raw: Any, kind: str, field: str, organization: SandboxOrganization) -> Any:
    if kind == "datetime":
        return payloads.parse_moment(raw, field, zoneinfo.ZoneInfo(organization.time_zone))
    if kind == "date":
        errors: list[dict[str, Any]] = []
        day = payloads.parse_day(raw, field, errors)
        if errors:
            raise validation_error(errors)
        return day
    if kind == "int":
        try:
            return int(raw)
        except (TypeError, ValueError) as exc:
            raise validation_error([detail(field, "INVALID", f"{raw!r} is not an integer.")]) from exc
    if kind == "decimal":
        errors = []
        amount = payloads.parse_amount(raw, field, errors, positive=False)
        if errors:
            raise validation_error(errors)
        return amount
    value = payloads.text(raw)
    return value.lower() if kind == "email" else value


def _condition(cond: Any, parameters: dict[str, tuple[str, str]], organization: SandboxOrganization) -> Q:
    if not isinstance(cond, dict):
        raise validation_error([detail("conditions", "INVALID", "A condition must be an object.")])
    parameter, operator = cond.get("parameter"), cond.get("operator")
    if parameter not in parameters:
        raise validation_error(
            [detail("parameter", "UNKNOWN_PARAMETER", f"Unknown query parameter {parameter!r}.")]
        )
    field, kind = parameters[parameter]
    if operator not in _ALLOWED[kind]:
        raise validation_error(
            [detail("operator", "UNKNOWN_OPERATOR", f"Operator {operator!r} is not valid for {parameter!r}.")]
        )
    if operator in ("Is Empty", "Is Not Empty"):
        return Q(**{field: ""}) if operator == "Is Empty" else ~Q(**{field: ""})
    value = _value(cond.get("value"), kind, "value", organization)
    if operator == "Between":
        second = _value(cond.get("secondaryValue"), kind, "secondaryValue", organization)
        return Q(**{f"{field}__gte": value, f"{field}__lte": second})
    if operator == "Is Not":
        return ~Q(**{field: value})
    lookup = _TEXT_OPERATORS[operator] if kind in ("text", "email") else _ORDERED_OPERATORS[operator]
    return Q(**{f"{field}__{lookup}": value})


def _filter(body: Any, parameters: dict[str, tuple[str, str]], organization: SandboxOrganization) -> Q:
    groups = body.get("groups") or []
    if not isinstance(groups, list):
        raise validation_error([detail("groups", "INVALID", "groups must be a list.")])
    combined = Q()
    for group in groups:
        conditions = group.get("conditions") if isinstance(group, dict) else None
        if not isinstance(conditions, list):
            raise validation_error([detail("groups", "INVALID", "Each group needs a conditions list.")])
        group_q = Q()
        for cond in conditions:
            group_q &= _condition(cond, parameters, organization)
        combined |= group_q
    return combined


def _ordering(body: dict[str, Any], sorts: dict[str, str]) -> list[str]:
    sort_by = body.get("sortBy") or "Id"
    if sort_by not in sorts:
        raise validation_error([detail("sortBy", "INVALID", f"Cannot sort by {sort_by!r}.")])
    sign = "-" if body.get("descending") else ""
    return [f"{sign}{sorts[sort_by]}", f"{sign}pk"]


def _body(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise validation_error([detail("body", "INVALID", "The query must be an object.")])
    return body


def contact_query(*, organization: SandboxOrganization, body: Any) -> QuerySet[SandboxContact]:
    body = _body(body)
    qs = SandboxContact.objects.filter(organization=organization).filter(
        _filter(body, CONTACT_PARAMETERS, organization)
    )
    if not body.get("includeArchived"):
        qs = qs.filter(archived=False)
    return qs.order_by(*_ordering(body, CONTACT_SORTS))


def gift_query(*, organization: SandboxOrganization, body: Any) -> QuerySet[SandboxGift]:
    body = _body(body)
    qs = SandboxGift.objects.filter(organization=organization).filter(
        _filter(body, GIFT_PARAMETERS, organization)
    )
    return qs.order_by(*_ordering(body, GIFT_SORTS))


BY_CONTACT_SORTS = {
    "Id": "pk",
    "GiftDate": "gift_date",
    "Amount": "amount",
    "Batch": "batch",
    "CreatedDateTime": "created_at",
}


def _contact_or_404(organization: SandboxOrganization, contact_id: int) -> None:
    if not SandboxContact.objects.filter(organization=organization, pk=contact_id).exists():
        raise payloads.not_found("Contact")


def gifts_by_contact(
    *, organization: SandboxOrganization, contact_id: int, params: dict[str, str]
) -> QuerySet[SandboxGift]:
    """A contact's gifts (``GET Gift/ByContact``): ``sortBy`` one of the documented keys."""
    _contact_or_404(organization, contact_id)
    body = {"sortBy": params.get("sortBy") or "Id", "descending": params.get("descending") == "true"}
    qs = SandboxGift.objects.filter(organization=organization, contact_id=contact_id)
    return qs.order_by(*_ordering(body, BY_CONTACT_SORTS))


def recurring_by_contact(
    *, organization: SandboxOrganization, contact_id: int
) -> QuerySet[SandboxRecurringGift]:
    _contact_or_404(organization, contact_id)
    return SandboxRecurringGift.objects.filter(organization=organization, contact_id=contact_id).order_by(
        "pk"
    )
