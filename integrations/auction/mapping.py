"""Auction/event orders → Virtuous: the order splitter of the auction recipe (virtuous-api 4.10).

One order becomes one gift per line, keyed ``{order}-{linetype}-{line_no}``:

- ``ticket``, ``auction_win``, ``buy_now``, ``sponsorship``: a Gift of the full amount with a
  premium (``giftPremiums``: the premium id from the ``premium_map`` setting by item code, else by
  line type, and the fair-market value per item as ``valuePerItem``); the deductible part is
  amount − FMV × quantity. A line with an FMV but no mapped premium is a MappingError.
- ``donation``, ``paddle_raise``: a plain Gift (an unpaid paddle raise is a pledge: not enqueued,
  surfaced for review).
- ``donated_item``: a NonCash Gift from the item's donor (``line.donor``), valued at its FMV.
- ``raffle``: not deductible, so skipped, unless ``raffle_project_code`` is set: then a Gift to that
  project marked not tax-deductible.

``order.refunded`` / ``order.voided`` name the lines they undo; each such line becomes a Reversing
Transaction keyed ``{line id}-refund`` (with its gift, in case the original order never arrived;
the submitter waits for the gift). People: ``buyer`` and line ``donor`` become Contact
Transactions keyed on their platform ids; ``type: "organization"`` (corporate sponsors) gives an
Organization contact. A person without an id (a walk-up) stops the whole order for review:
an id is never invented. The project comes from the project map by ``"{event id}:{line type}"``,
then the event id.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from integrations.common.mapping import MappingContext
from integrations.common.parsing import to_bool, to_datetime, to_decimal, to_int
from integrations.types import MappingError, Operation, OutboundRequest, Outcome

PREMIUM_TYPES = {"ticket", "auction_win", "buy_now", "sponsorship"}
CASH_TYPES = {"donation", "paddle_raise"}
LINE_TYPES = PREMIUM_TYPES | CASH_TYPES | {"donated_item", "raffle"}
GIFT_TYPES = {"card": "Credit", "credit": "Credit", "cash": "Cash", "check": "Check", "ach": "EFT"}
ORGANIZATION_TYPES = {"organization", "company", "corporate", "business"}
DEFAULT_NON_CASH_TYPE = "In-Kind"
MAX_TEXT = 255
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_PLAIN_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("100000000")  # far above any real line; beyond it Decimal quantize overflows too


class WalkUp(Exception):
    """A person on the order has no id: a human must identify them."""


def _text(value: Any) -> str:
    return value.strip()[:MAX_TEXT] if isinstance(value, str) else ""


def _id(value: Any, what: str) -> str:
    text = "" if value is None or isinstance(value, bool | dict | list) else str(value).strip()
    if not _ID.match(text):
        raise MappingError(f"{what} is missing or not a usable id: {value!r}")
    return text


def _money(value: Any, what: str, *, positive: bool) -> Decimal:
    if isinstance(value, str) and value.strip() and not _PLAIN_NUMBER.match(value.strip()):
        # the platform sends plain numbers; a separator or currency sign means the data is off
        raise MappingError(f"{what} is not a plain decimal number: {value!r}")
    try:
        amount = to_decimal(value)
    except ValueError as exc:
        raise MappingError(f"{what} is not an amount: {value!r}") from exc
    if amount is None:
        amount = Decimal("0")
    if amount < 0 or (positive and amount == 0):
        raise MappingError(f"{what} must be {'positive' if positive else 'zero or more'}, got {value!r}")
    if amount > MAX_AMOUNT:
        raise MappingError(f"{what} is implausibly large: {value!r}")
    if amount != amount.quantize(CENT):
        raise MappingError(f"{what} has more than two decimals: {value!r}")
    return amount


def _quantity(value: Any, what: str) -> int:
    try:
        quantity = to_int(value)
    except ValueError as exc:
        raise MappingError(f"{what} is not a whole number: {value!r}") from exc
    quantity = 1 if quantity is None else quantity
    if not 1 <= quantity <= 10_000:
        raise MappingError(f"{what} must be between 1 and 10000, got {value!r}")
    return quantity


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _person(ctx: MappingContext, person: dict[str, Any], role: str) -> tuple[OutboundRequest, dict[str, Any]]:
    """A Contact Transaction for a buyer or item donor, and the gift's contact block."""
    if person.get("id") in (None, ""):
        shown = " ".join(filter(None, (_text(person.get("first_name")), _text(person.get("last_name")))))
        raise WalkUp(f"{role} {shown or _text(person.get('name')) or '(no name)'} has no id")
    reference = _id(person.get("id"), f"{role} id")
    email = _text(person.get("email"))
    if _text(person.get("type")).lower() in ORGANIZATION_TYPES:
        name = _text(person.get("name")) or _text(person.get("organization_name"))
        if not name:
            raise MappingError(f"Organization {role} {reference} has no name")
        fields: dict[str, str] = {"contactType": "Organization", "name": name}
        block = {"referenceId": reference, "type": "Organization", "name": name, "email": email}
    else:
        fields = {
            "contactType": "Household",
            "firstName": _text(person.get("first_name")),
            "lastName": _text(person.get("last_name")),
        }
        block = {
            "referenceId": reference,
            "firstName": fields["firstName"],
            "lastName": fields["lastName"],
            "email": email,
        }
    phone = _text(person.get("phone"))
    fields.update(
        {
            "emailType": "Home Email" if email else "",
            "email": email,
            "phoneType": "Home Phone" if phone else "",
            "phone": phone,
            "address1": _text(person.get("address1")),
            "address2": _text(person.get("address2")),
            "city": _text(person.get("city")),
            "state": _text(person.get("state")),
            "postal": _text(person.get("postal")),
            "country": _text(person.get("country")),
        }
    )
    payload = {"referenceSource": ctx.source_name, "referenceId": reference, **fields}
    request = OutboundRequest(
        Operation.CONTACT_TRANSACTION,
        ctx.source_name,
        reference,
        {k: v for k, v in payload.items() if v != ""},
    )
    return request, {k: v for k, v in block.items() if v != ""}


class _Order:
    """The order-level facts every line shares."""

    def __init__(self, ctx: MappingContext, payload: dict[str, Any]) -> None:
        order = payload["order"]
        self.ctx = ctx
        self.id = _id(order.get("id"), "order id")
        event = _object(order.get("event"))
        self.event_id = _id(event.get("id"), "event id")
        self.event_name = _text(event.get("name"))
        try:
            placed = to_datetime(order.get("created_at"))
            happened = to_datetime(payload.get("occurred_at"))
        except ValueError as exc:
            raise MappingError(f"Not a date/time: {exc}") from exc
        if placed is None:
            raise MappingError(f"Order {self.id} has no created_at")
        self.placed_at: datetime = placed
        self.happened_at: datetime = happened or placed
        currency = _text(order.get("currency")).upper() or "USD"
        if not _CURRENCY.match(currency):
            raise MappingError(f"Unknown currency code {order.get('currency')!r}")
        self.currency = currency
        self.gift_type = GIFT_TYPES.get(_text(order.get("payment_method")).lower(), "Credit")
        self.buyer = _object(order.get("buyer"))
        settings = ctx.settings or {}
        self.premium_map = _object(settings.get("premium_map"))
        self.raffle_project = _text(settings.get("raffle_project_code"))
        self.non_cash_type = _text(settings.get("non_cash_gift_type")) or DEFAULT_NON_CASH_TYPE

    def project(self, line_type: str) -> str:
        return self.ctx.project_code(f"{self.event_id}:{line_type}", self.event_id)

    def gift(self, line_id: str, contact: dict[str, Any], amount: Decimal, project: str) -> dict[str, Any]:
        return {
            "transactionSource": self.ctx.source_name,
            "transactionId": line_id,
            "contact": contact,
            "giftDate": self.ctx.local_date(self.placed_at),
            "giftType": self.gift_type,
            "amount": amount,
            "currencyCode": self.currency,
            "designations": [{"projectCode": project, "amountDesignated": amount}],
        }


def _split_line(order: _Order, line: dict[str, Any]) -> tuple[list[OutboundRequest], str, str]:
    """One line → (requests, gift transaction id or "", why it was skipped or "")."""
    line_type = _text(line.get("type")).lower()
    if line_type not in LINE_TYPES:
        raise MappingError(f"Order {order.id}: unknown line type {line.get('type')!r}")
    line_no = _id(line.get("line_no"), f"order {order.id} line number")
    line_id = f"{order.id}-{line_type}-{line_no}"
    item = _object(line.get("item"))
    label = _text(item.get("name")) or _text(item.get("code")) or line_type
    if line_type == "raffle" and not order.raffle_project:
        _money(line.get("amount"), f"{line_id} amount", positive=True)
        return [], "", f"{line_id}: raffle, not deductible, skipped"
    if line_type == "paddle_raise" and _paid(line.get("paid"), line_id) is False:
        return [], "", f"{line_id}: paddle raise pledged but not paid (record it as a Pledge)"
    if line_type == "donated_item":
        contact, block = _person(order.ctx, _object(line.get("donor")), f"{line_id} item donor")
        value = _money(line.get("fmv"), f"{line_id} fmv", positive=True)
        gift = order.gift(line_id, block, value, order.project(line_type))
        description = _text(item.get("description")) or label
        gift.update(
            {
                "giftType": "NonCash",
                "nonCashGiftType": order.non_cash_type,
                "nonCashGiftDescription": description,
                "inKindDescription": description,
                "inKindValue": value,
                "notes": f"Donated auction item {label} for {order.event_name or order.event_id}",
            }
        )
        return [contact, _gift_request(order, line_id, gift)], line_id, ""
    contact, block = _person(order.ctx, order.buyer, f"order {order.id} buyer")
    amount = _money(line.get("amount"), f"{line_id} amount", positive=True)
    if line_type == "raffle":
        gift = order.gift(line_id, block, amount, order.raffle_project)
        gift.update({"isTaxDeductible": False, "notes": f"Raffle: {label} (not deductible)"})
        return [contact, _gift_request(order, line_id, gift)], line_id, ""
    gift = order.gift(line_id, block, amount, order.project(line_type))
    if line_type in PREMIUM_TYPES:
        quantity = _quantity(line.get("quantity"), f"{line_id} quantity")
        fmv = _money(line.get("fmv"), f"{line_id} fmv", positive=False)
        total_fmv = fmv * quantity
        deductible = max(amount - total_fmv, Decimal("0.00"))
        gift["notes"] = (
            f"{line_type.replace('_', ' ').capitalize()}: {label} x{quantity}; "
            f"fair-market value {total_fmv}, deductible {deductible}"
        )
        if fmv > 0:
            code = _text(item.get("code"))
            premium_id = order.premium_map.get(code) if code else None
            premium_id = premium_id or order.premium_map.get(line_type)
            if premium_id in (None, ""):
                raise MappingError(f"{line_id}: no premium is mapped for {code or line_type!r} (premium_map)")
            gift["giftPremiums"] = [{"premiumId": premium_id, "quantity": quantity, "valuePerItem": fmv}]
    else:
        gift["notes"] = f"{line_type.replace('_', ' ').capitalize()} at {order.event_name or order.event_id}"
    return [contact, _gift_request(order, line_id, gift)], line_id, ""


def _paid(value: Any, line_id: str) -> bool | None:
    try:
        return to_bool(value)
    except ValueError as exc:
        raise MappingError(f"{line_id}: paid is not a yes/no value: {value!r}") from exc


def _gift_request(order: _Order, line_id: str, gift: dict[str, Any]) -> OutboundRequest:
    return OutboundRequest(
        Operation.GIFT_TRANSACTION, order.ctx.source_name, line_id, gift, partner_modified_at=order.placed_at
    )


def _split(ctx: MappingContext, payload: dict[str, Any], *, reverse: bool) -> Outcome:
    order = _Order(ctx, payload)
    lines = payload["order"]["lines"]
    if not lines:
        raise MappingError(f"Order {order.id} has no lines")
    requests: dict[str, OutboundRequest] = {}
    skipped: list[str] = []
    seen: set[str] = set()
    try:
        for line in lines:
            line_requests, line_id, skip = _split_line(order, line)
            if skip:
                skipped.append(skip)
                continue
            if line_id in seen:
                raise MappingError(f"Order {order.id} has line {line_id} twice")
            seen.add(line_id)
            for request in line_requests:
                requests.setdefault(request.key, request)
            if reverse:
                reversal = ctx.reversal(
                    line_id,
                    on=order.happened_at,
                    notes=f"{payload['event_type'].removeprefix('order.').capitalize()} on the event platform",
                )
                requests[reversal.key] = reversal
    except WalkUp as exc:
        return Outcome(review_reason=f"Order {order.id}: {exc}; identify the person, then replay")
    note = "; ".join(skipped)
    pledges = [s for s in skipped if "not paid" in s]
    if pledges:
        return Outcome(requests=list(requests.values()), review_reason="; ".join(pledges), note=note)
    return Outcome(requests=list(requests.values()), note=note)


def order_completed(ctx: MappingContext, payload: dict[str, Any]) -> Outcome:
    """A paid order: contacts and one gift per line."""
    return _split(ctx, payload, reverse=False)


def order_reversed(ctx: MappingContext, payload: dict[str, Any]) -> Outcome:
    """A refund or void of the lines listed: each line's gift and its Reversing Transaction."""
    return _split(ctx, payload, reverse=True)


HANDLERS = {
    "order.completed": order_completed,
    "order.refunded": order_reversed,
    "order.voided": order_reversed,
}
