"""GoFundMe Pro → Virtuous, following the fundraising-platform recipe (virtuous-api 4.10).

Three participants: the donor (a Contact keyed ``supporter-<supporter_id>``), the fundraiser (the
fundraising page, a Contact keyed ``page-<id>``; a team is an Organization Contact keyed
``team-<id>``; both tagged "Fundraiser") and the nonprofit. A transaction becomes a Gift keyed on
its id with the **gross** donation amount; the platform fee, the fundraiser and the team go in gift
custom fields, so attribution survives even before the fundraiser's Contact exists. Refunds,
voids and lost chargebacks become Reversing Transactions (the submitter waits for the gift);
recurring donation plans become Recurring Gifts keyed ``plan-<id>`` and are cancelled with them.

Fields read (REST names; the webhook ``data`` is assumed to be the same resource):
transaction ``id, status, donation_gross_amount, fees_amount, currency_code, purchased_at,
created_at, refunded_at, updated_at, supporter_id, campaign_id, fundraising_page_id,
fundraising_team_id, recurring_donation_plan_id, is_anonymous, payment_method, billing_*,
member_email_address, member_phone, comment`` and, when embedded, ``supporter{...}``,
``fundraising_page{id, member{first_name, last_name, email_address}}``, ``fundraising_team{id, name}``.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from integrations.common.mapping import MappingContext
from integrations.common.parsing import to_bool, to_datetime, to_decimal
from integrations.types import MappingError, Operation, OutboundRequest, Outcome

FUNDRAISER_FIELD = "Fundraiser Contact ID"
TEAM_FIELD = "Fundraising Team Contact ID"
FEE_FIELD = "Platform Fee"
FUNDRAISER_TAG = "Fundraiser"
ANONYMOUS_TAG = "Anonymous Donor"
MAX_TEXT = 255
MAX_AMOUNT = Decimal("100000000")  # far above any real gift; beyond it Decimal quantize overflows too

GIFT_STATUSES = {"success", "cb_initiated"}
REVERSED_STATUSES = {"refunded", "voided", "cb_lost"}
NO_GIFT_STATUSES = {"pending", "failed", "canceled", "incomplete", "test"}
GIFT_TYPES = {"cc": "Credit", "credit_card": "Credit", "ach": "EFT", "paypal": "PayPal", "check": "Check"}
FREQUENCIES = {"monthly": "Monthly", "quarterly": "Quarterly", "yearly": "Annually", "annually": "Annually"}
PLAN_ACTIVE = {"active"}
PLAN_ENDED = {"cancelled", "canceled", "completed", "failed"}
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_PLAIN_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _id(value: Any, what: str) -> str:
    text = "" if value is None or isinstance(value, bool | dict | list) else str(value).strip()
    if not text or len(text) > 64:
        raise MappingError(f"{what} is missing or not an id: {value!r}")
    return text


def _text(value: Any) -> str:
    return value.strip()[:MAX_TEXT] if isinstance(value, str) else ""


def _money(value: Any, what: str) -> Decimal | None:
    """A non-negative amount in cents, or None when absent; anything else is a MappingError."""
    if isinstance(value, str) and value.strip() and not _PLAIN_NUMBER.match(value.strip()):
        # GoFundMe Pro sends plain numbers; a separator or currency sign means the data is off
        raise MappingError(f"{what} is not a plain decimal number: {value!r}")
    try:
        amount = to_decimal(value)
    except ValueError as exc:
        raise MappingError(f"{what} is not an amount: {value!r}") from exc
    if amount is None:
        return None
    if amount < 0:
        raise MappingError(f"{what} must not be negative, got {value!r}")
    if amount > MAX_AMOUNT:
        raise MappingError(f"{what} is implausibly large: {value!r}")
    if amount != amount.quantize(Decimal("0.01")):
        raise MappingError(f"{what} has more than two decimals: {value!r}")
    return amount


def _amount(value: Any, what: str) -> Decimal:
    amount = _money(value, what)
    if not amount:
        raise MappingError(f"{what} must be a positive amount, got {value!r}")
    return amount


def _currency(value: Any) -> str:
    code = value.strip().upper() if isinstance(value, str) else ""
    if not _CURRENCY.match(code or "USD"):
        raise MappingError(f"Unknown currency code {value!r}")
    return code or "USD"


def _optional_moment(value: Any, what: str) -> datetime | None:
    try:
        return to_datetime(value)
    except ValueError as exc:
        raise MappingError(f"{what} is not a date/time: {value!r}") from exc


def _moment(value: Any, what: str) -> datetime:
    moment = _optional_moment(value, what)
    if moment is None:
        raise MappingError(f"{what} is missing")
    return moment


def _bool(value: Any) -> bool:
    try:
        return bool(to_bool(value))
    except ValueError as exc:
        raise MappingError(f"Not a yes/no value: {value!r}") from exc


def _contact(
    ctx: MappingContext, reference: str, fields: dict[str, str], *, tags: list[str] | None = None
) -> OutboundRequest:
    payload = {"referenceSource": ctx.source_name, "referenceId": reference, **fields}
    if tags:
        payload["tags"] = ";".join(tags)
    return OutboundRequest(
        Operation.CONTACT_TRANSACTION,
        ctx.source_name,
        reference,
        {k: v for k, v in payload.items() if v != ""},
    )


def _person(record: dict[str, Any], transaction: dict[str, Any] | None = None) -> dict[str, str]:
    """Contact fields from a supporter (or member) object, else the transaction's billing fields."""
    billing = transaction or {}

    def pick(name: str) -> str:
        return _text(record.get(name)) or _text(billing.get(f"billing_{name}"))

    email = _text(record.get("email_address")) or _text(billing.get("member_email_address"))
    phone = _text(record.get("phone")) or _text(billing.get("member_phone"))
    return {
        "contactType": "Household",
        "firstName": pick("first_name"),
        "lastName": pick("last_name"),
        "emailType": "Home Email" if email else "",
        "email": email,
        "phoneType": "Home Phone" if phone else "",
        "phone": phone,
        "address1": pick("address1"),
        "address2": pick("address2"),
        "city": pick("city"),
        "state": pick("state"),
        "postal": pick("postal_code"),
        "country": pick("country"),
    }


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def donor_reference(txn: dict[str, Any]) -> str:
    """The donor's stable reference: the supporter id, never the transaction id."""
    supporter = _object(txn.get("supporter"))
    return f"supporter-{_id(txn.get('supporter_id') or supporter.get('id'), 'supporter_id')}"


def _fundraisers(ctx: MappingContext, txn: dict[str, Any]) -> tuple[list[OutboundRequest], dict[str, str]]:
    """Contacts for the fundraising page and team (when their details are embedded) and the gift
    custom fields that attribute the donation to them (always, from the ids on the transaction)."""
    requests: list[OutboundRequest] = []
    fields: dict[str, str] = {}
    page_id, team_id = txn.get("fundraising_page_id"), txn.get("fundraising_team_id")
    if team_id not in (None, ""):
        team_ref = f"team-{_id(team_id, 'fundraising_team_id')}"
        fields[TEAM_FIELD] = fields[FUNDRAISER_FIELD] = team_ref
        name = _text(_object(txn.get("fundraising_team")).get("name"))
        if name:
            requests.append(
                _contact(ctx, team_ref, {"contactType": "Organization", "name": name}, tags=[FUNDRAISER_TAG])
            )
    if page_id not in (None, ""):
        page_ref = f"page-{_id(page_id, 'fundraising_page_id')}"
        fields[FUNDRAISER_FIELD] = page_ref
        member = _object(_object(txn.get("fundraising_page")).get("member"))
        person = _person(member)
        if person["email"] or (person["firstName"] and person["lastName"]):
            requests.append(_contact(ctx, page_ref, person, tags=[FUNDRAISER_TAG]))
    return requests, fields


def transaction(ctx: MappingContext, payload: dict[str, Any]) -> Outcome:
    """A transaction (created or updated): donor, fundraisers, gift, and a reversal if refunded."""
    txn = payload["data"]
    gift_id = _id(txn.get("id"), "transaction id")
    status = _text(txn.get("status")).lower()
    if status == "test":
        return Outcome(note="test transaction: nothing to record")
    anonymous = _bool(txn.get("is_anonymous"))
    reference = donor_reference(txn)
    donor = _contact(
        ctx,
        reference,
        _person(_object(txn.get("supporter")), txn),
        tags=[ANONYMOUS_TAG] if anonymous else None,
    )
    if status in NO_GIFT_STATUSES:
        return Outcome(requests=[donor], note=f"transaction status {status!r}: no gift until it succeeds")
    if status not in GIFT_STATUSES | REVERSED_STATUSES:
        raise MappingError(f"Unknown transaction status {status!r}")
    amount = _amount(txn.get("donation_gross_amount"), "donation_gross_amount")
    fee = _money(txn.get("fees_amount"), "fees_amount") or None
    purchased_at = _moment(txn.get("purchased_at") or txn.get("created_at"), "purchased_at")
    project = ctx.project_code(_id(txn.get("campaign_id"), "campaign_id"))
    fundraiser_requests, custom_fields = _fundraisers(ctx, txn)
    if fee is not None:
        custom_fields[FEE_FIELD] = str(fee)
    gift: dict[str, Any] = {
        "transactionSource": ctx.source_name,
        "transactionId": gift_id,
        "contact": {
            "referenceId": reference,
            "firstName": donor.payload.get("firstName", ""),
            "lastName": donor.payload.get("lastName", ""),
            "email": donor.payload.get("email", ""),
        },
        "giftDate": ctx.local_date(purchased_at),
        "giftType": GIFT_TYPES.get(_text(txn.get("payment_method")).lower(), "Credit"),
        "amount": amount,
        "currencyCode": _currency(txn.get("currency_code")),
        "designations": [{"projectCode": project, "amountDesignated": amount}],
        "customFields": custom_fields,
        "notes": _text(txn.get("comment")),
    }
    plan_id = txn.get("recurring_donation_plan_id")
    if plan_id not in (None, ""):
        gift["recurringGiftTransactionId"] = f"plan-{_id(plan_id, 'recurring_donation_plan_id')}"
    requests = [
        donor,
        *fundraiser_requests,
        OutboundRequest(
            Operation.GIFT_TRANSACTION,
            ctx.source_name,
            gift_id,
            {k: v for k, v in gift.items() if v not in ("", {})},
            partner_modified_at=purchased_at,
        ),
    ]
    if status in REVERSED_STATUSES:
        reversed_at = (
            _optional_moment(txn.get("refunded_at"), "refunded_at") if status == "refunded" else None
        )
        requests.append(
            ctx.reversal(
                gift_id,
                on=reversed_at or _moment(txn.get("updated_at") or purchased_at, "updated_at"),
                notes=f"Transaction {status} in GoFundMe Pro",
            )
        )
    if status == "cb_initiated":
        return Outcome(requests=requests, review_reason=f"Chargeback opened on transaction {gift_id}")
    return Outcome(requests=requests)


def supporter(ctx: MappingContext, payload: dict[str, Any]) -> Outcome:
    """A supporter created or updated: the donor's Contact, with no gift."""
    record = payload["data"]
    reference = f"supporter-{_id(record.get('id'), 'supporter id')}"
    return Outcome(requests=[_contact(ctx, reference, _person(record))])


def recurring_plan(ctx: MappingContext, payload: dict[str, Any]) -> Outcome:
    """A recurring donation plan: create the schedule while active, cancel it once it ends."""
    plan = payload["data"]
    schedule_id = f"plan-{_id(plan.get('id'), 'plan id')}"
    status = _text(plan.get("status")).lower()
    if status in PLAN_ENDED:
        return Outcome(requests=[ctx.recurring_cancel(schedule_id, reason=f"Plan {status} in GoFundMe Pro")])
    if status == "paused":
        return Outcome(review_reason=f"Plan {schedule_id} paused: Virtuous has no pause, decide by hand")
    if status not in PLAN_ACTIVE:
        raise MappingError(f"Unknown recurring plan status {status!r}")
    amount = _amount(
        plan.get("donation_amount") if plan.get("donation_amount") is not None else plan.get("amount"),
        "plan amount",
    )
    frequency = FREQUENCIES.get(_text(plan.get("frequency")).lower())
    if frequency is None:
        raise MappingError(f"Unknown plan frequency {plan.get('frequency')!r}")
    started = _moment(plan.get("started_at") or plan.get("created_at"), "plan start")
    reference = donor_reference(plan)
    project = ctx.project_code(_id(plan.get("campaign_id"), "campaign_id"))
    next_payment = _optional_moment(plan.get("next_processing_date"), "next_processing_date")
    schedule = {
        "transactionSource": ctx.source_name,
        "transactionId": schedule_id,
        "contact": {
            "referenceSource": ctx.source_name,
            "referenceId": reference,
            "email": _text(_object(plan.get("supporter")).get("email_address")),
        },
        "startDate": ctx.local_date(started),
        "frequency": frequency,
        "amount": amount,
        "currencyCode": _currency(plan.get("currency_code")),
        "designations": [{"projectCode": project, "amountDesignated": amount}],
        "automatedPayments": True,
        "trackPayments": True,
    }
    if next_payment is not None:
        schedule["nextExpectedPaymentDate"] = ctx.local_date(next_payment)
    return Outcome(
        requests=[
            _contact(ctx, reference, _person(_object(plan.get("supporter")))),
            OutboundRequest(
                Operation.RECURRING_GIFT_CREATE,
                ctx.source_name,
                schedule_id,
                schedule,
                partner_modified_at=started,
            ),
        ]
    )


HANDLERS = {
    "transaction.created": transaction,
    "transaction.updated": transaction,
    "supporter.created": supporter,
    "supporter.updated": supporter,
    "recurring_donation_plan.created": recurring_plan,
    "recurring_donation_plan.updated": recurring_plan,
}
