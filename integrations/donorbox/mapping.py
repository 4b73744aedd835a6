"""Donorbox → Virtuous. Pure functions: a normalised payload in, queue requests out.

Donations become a Contact Transaction for the donor and a Gift Transaction keyed on the
donation id; a refund becomes a Reversing Transaction for that gift (a partial refund is
surfaced for review: Virtuous reverses whole gifts). Plans become recurring gifts.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from integrations.common.mapping import MappingContext
from integrations.common.parsing import to_datetime, to_decimal
from integrations.types import MappingError, Operation, OutboundRequest, Outcome

FREQUENCIES = {
    "weekly": "Weekly",
    "monthly": "Monthly",
    "quarterly": "Quarterly",
    "annually": "Annually",
    "yearly": "Annually",
}
GIFT_TYPES = {"stripe": "Credit", "paypal": "PayPal", "ach": "EFT", "bank": "EFT"}


def donor_reference(donor: dict[str, Any]) -> str:
    if donor.get("id") in (None, ""):
        raise MappingError("Donation has no donor id")
    return f"donor-{donor['id']}"


def contact_request(ctx: MappingContext, donor: dict[str, Any]) -> OutboundRequest:
    reference = donor_reference(donor)
    payload = {
        "referenceSource": ctx.source_name,
        "referenceId": reference,
        "contactType": "Household",
        "firstName": donor.get("first_name") or "",
        "lastName": donor.get("last_name") or "",
        "emailType": "Home Email",
        "email": donor.get("email") or "",
        "address1": donor.get("address") or "",
        "address2": donor.get("address_line_2") or "",
        "city": donor.get("city") or "",
        "state": donor.get("state") or "",
        "postal": donor.get("zip_code") or "",
        "country": donor.get("country") or "",
    }
    return OutboundRequest(
        Operation.CONTACT_TRANSACTION,
        ctx.source_name,
        reference,
        {k: v for k, v in payload.items() if v != ""},
    )


def _amount(value: Any, what: str) -> Decimal:
    amount = to_decimal(value)
    if amount is None or amount <= 0:
        raise MappingError(f"{what} must be a positive amount, got {value!r}")
    if amount != amount.quantize(Decimal("0.01")):
        raise MappingError(f"{what} has more than two decimals: {value!r}")
    return amount


def donation(ctx: MappingContext, payload: dict[str, Any]) -> Outcome:
    d = payload["donation"]
    if not d.get("id"):
        raise MappingError("Donation has no id")
    donor = d.get("donor") or {}
    requests = [contact_request(ctx, donor)]
    status = str(d.get("status") or "paid").lower()
    if status not in ("paid", "refunded", "succeeded"):
        return Outcome(requests=requests, note=f"donation status {status!r}: no gift until it is paid")
    amount = _amount(d.get("amount"), "amount")
    donated_at = to_datetime(d.get("donation_date"))
    if donated_at is None:
        raise MappingError("Donation has no donation_date")
    campaign = d.get("campaign") or {}
    project = ctx.project_code(campaign.get("id"), d.get("designation"))
    gift_id = str(d["id"])
    gift = {
        "transactionSource": ctx.source_name,
        "transactionId": gift_id,
        "contact": {
            "referenceId": donor_reference(donor),
            "firstName": donor.get("first_name") or "",
            "lastName": donor.get("last_name") or "",
            "email": donor.get("email") or "",
        },
        "giftDate": ctx.local_date(donated_at),
        "giftType": GIFT_TYPES.get(str(d.get("donation_type") or "").lower(), "Credit"),
        "amount": amount,
        "currencyCode": str(d.get("currency") or "USD").upper(),
        "designations": [{"projectCode": project, "amountDesignated": amount}],
        "notes": (d.get("comment") or "")[:1000],
    }
    requests.append(
        OutboundRequest(
            Operation.GIFT_TRANSACTION, ctx.source_name, gift_id, gift, partner_modified_at=donated_at
        )
    )
    refunded = to_decimal(d.get("amount_refunded")) or Decimal("0")
    if refunded > 0:
        if refunded != amount:
            return Outcome(
                requests=requests, review_reason=f"Partial refund of {refunded} on {amount}: reverse by hand"
            )
        requests.append(
            ctx.reversal(
                gift_id, on=to_datetime(payload.get("created_at")) or donated_at, notes="Refunded in Donorbox"
            )
        )
    return Outcome(requests=requests)


def plan(ctx: MappingContext, payload: dict[str, Any]) -> Outcome:
    p = payload["plan"]
    if not p.get("id"):
        raise MappingError("Plan has no id")
    schedule_id = f"plan-{p['id']}"
    status = str(p.get("status") or "active").lower()
    if status in ("cancelled", "canceled", "failed"):
        return Outcome(requests=[ctx.recurring_cancel(schedule_id, reason=f"Plan {status} in Donorbox")])
    donor = p.get("donor") or {}
    amount = _amount(p.get("amount"), "plan amount")
    frequency = FREQUENCIES.get(str(p.get("type") or "").lower())
    if frequency is None:
        raise MappingError(f"Unknown plan frequency {p.get('type')!r}")
    started = to_datetime(p.get("started_at"))
    project = ctx.project_code((p.get("campaign") or {}).get("id"))
    schedule = {
        "transactionSource": ctx.source_name,
        "transactionId": schedule_id,
        "contact": {
            "referenceSource": ctx.source_name,
            "referenceId": donor_reference(donor),
            "email": donor.get("email") or "",
        },
        "startDate": ctx.local_date(started) if started else None,
        "frequency": frequency,
        "amount": amount,
        "designations": [{"projectCode": project, "amountDesignated": amount}],
        "automatedPayments": True,
        "trackPayments": True,
    }
    return Outcome(
        requests=[
            contact_request(ctx, donor),
            OutboundRequest(Operation.RECURRING_GIFT_CREATE, ctx.source_name, schedule_id, schedule),
        ]
    )


HANDLERS = {
    "donation.created": donation,
    "donation.updated": donation,
    "plan.created": plan,
    "plan.updated": plan,
}
