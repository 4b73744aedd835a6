"""Stripe → Virtuous. Pure functions: a Stripe event in, queue requests out.

Every gift is keyed on the PaymentIntent (``pi_...``), whichever event or poll saw it first, so
``payment_intent.succeeded``, ``invoice.paid`` and a polled charge of one payment are one queue
item. The donor is the Stripe Customer (``cus_...``). Amounts arrive in the currency's minor
unit and become Decimals with that currency's exponent (JPY has none, KWD has three).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from integrations.common.mapping import MappingContext
from integrations.common.parsing import from_unix_seconds
from integrations.types import MappingError, Operation, OutboundRequest, Outcome

# Stripe's zero-decimal and three-decimal currencies (docs.stripe.com/currencies); every other
# currency listed is charged in hundredths.
_ZERO_DECIMAL_CODES = "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF"
_THREE_DECIMAL_CODES = "BHD JOD KWD OMR TND"
_TWO_DECIMAL_CODES = """
    USD AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD CAD
    CDF CHF CNY COP CRC CVE CZK DKK DOP DZD EGP ETB EUR FJD FKP GBP GEL GIP GMD GTQ GYD HKD HNL HTG HUF
    IDR ILS INR ISK JMD KES KGS KHR KYD KZT LAK LBP LKR LRD LSL MAD MDL MKD MMK MNT MOP MUR MVR MWK MXN
    MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SEK SGD SHP SLE
    SOS SRD STD SZL THB TJS TOP TRY TTD TWD TZS UAH UYU UZS WST XCD YER ZAR ZMW
"""
ZERO_DECIMAL = frozenset(_ZERO_DECIMAL_CODES.split())
THREE_DECIMAL = frozenset(_THREE_DECIMAL_CODES.split())
CURRENCIES = frozenset(_TWO_DECIMAL_CODES.split()) | ZERO_DECIMAL | THREE_DECIMAL
EFT_METHODS = frozenset({"us_bank_account", "sepa_debit", "bacs_debit", "acss_debit", "au_becs_debit"})
CARD_METHODS = frozenset({"card", "card_present", "link"})
# Only the frequencies Virtuous is known to accept; anything else goes to review.
FREQUENCIES = {
    ("week", 1): "Weekly",
    ("month", 1): "Monthly",
    ("month", 3): "Quarterly",
    ("month", 12): "Annually",
    ("year", 1): "Annually",
}
MAX_TEXT = 255
PROJECT_METADATA_KEY = "virtuous_project_code"


def amount_from_minor(value: Any, currency: Any) -> tuple[Decimal, str]:
    """(amount, ISO code) from Stripe's integer minor units; bad values are a MappingError."""
    if not isinstance(currency, str) or currency.upper() not in CURRENCIES:
        raise MappingError(f"Unknown currency {currency!r}")
    code = currency.upper()
    if isinstance(value, bool) or not isinstance(value, int):
        raise MappingError(f"Amount must be an integer number of minor units, got {value!r}")
    if value <= 0:
        raise MappingError(f"Amount must be positive, got {value!r}")
    exponent = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    return Decimal(value).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)), code


def gift_type(method: str) -> str:
    if method in EFT_METHODS:
        return "EFT"
    if method == "paypal":
        return "PayPal"
    if method in CARD_METHODS or not method:
        return "Credit"  # wallets (Apple Pay, Google Pay) arrive as cards
    return "Other"


@dataclass(frozen=True)
class Donor:
    reference: str = ""
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone: str = ""
    address: tuple[tuple[str, str], ...] = ()

    @property
    def has_identity(self) -> bool:
        return bool(self.first_name or self.last_name or self.email)


def _dict(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MappingError(f"{what} must be an object, got {type(value).__name__}")
    return value


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MappingError(f"{what} must be text, got {type(value).__name__}")
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise MappingError(f"{what} is longer than {MAX_TEXT} characters")
    return value


def _id(value: Any, what: str) -> str:
    """An id that may arrive expanded (an object with ``id``) or as a plain string."""
    if isinstance(value, dict):
        value = value.get("id")
    return _text(value, what)


def _when(value: Any, what: str) -> datetime:
    try:
        return from_unix_seconds(value)
    except ValueError as exc:
        raise MappingError(f"{what} must be a Unix timestamp in range, got {value!r}") from exc


def _object(event: dict[str, Any], expected: str) -> dict[str, Any]:
    obj = _dict(_dict(event.get("data"), "data").get("object"), "data.object")
    if obj.get("object") != expected:
        raise MappingError(f"{event.get('type')} carries a {obj.get('object')!r}, expected {expected!r}")
    return obj


def _donor(*sources: tuple[str, dict[str, Any]], reference: Any = None) -> Donor:
    """Merge donor details field by field, first non-empty wins (billing details before others)."""
    fields: dict[str, str] = {}
    address: dict[str, str] = {}
    for label, source in sources:
        name = _text(source.get("name"), f"{label}.name")
        if name and "first" not in fields:
            first, _, last = name.rpartition(" ")
            fields["first"], fields["last"] = first.strip(), last.strip()
        for key in ("email", "phone"):
            value = _text(source.get(key), f"{label}.{key}")
            if value and key not in fields:
                fields[key] = value
        raw_address = _dict(source.get("address"), f"{label}.address")
        if raw_address and not address:
            for ours, theirs in (
                ("address1", "line1"),
                ("address2", "line2"),
                ("city", "city"),
                ("state", "state"),
                ("postal", "postal_code"),
                ("country", "country"),
            ):
                value = _text(raw_address.get(theirs), f"{label}.address.{theirs}")
                if value:
                    address[ours] = value
    email = fields.get("email", "")
    if email and ("@" not in email or " " in email):
        raise MappingError(f"Donor e-mail {email!r} is not an e-mail address")
    return Donor(
        reference=_id(reference, "customer"),
        first_name=fields.get("first", ""),
        last_name=fields.get("last", ""),
        email=email,
        phone=fields.get("phone", ""),
        address=tuple(address.items()),
    )


def _customer_details(value: Any) -> dict[str, Any]:
    """An expanded Customer carries the donor's own details; a bare id carries none."""
    return value if isinstance(value, dict) else {}


def contact_request(ctx: MappingContext, donor: Donor, *, occasion: str) -> OutboundRequest | None:
    """A Contact Transaction for a Stripe Customer, or None when there is nothing to say.

    Keyed per occasion (the payment or checkout) so later details still reach Virtuous, which
    matches the contact on the reference pair and updates it.
    """
    if not donor.reference or not donor.has_identity:
        return None
    payload = {
        "referenceSource": ctx.source_name,
        "referenceId": donor.reference,
        "contactType": "Household",
        "firstName": donor.first_name,
        "lastName": donor.last_name,
        "emailType": "Home Email" if donor.email else "",
        "email": donor.email,
        "phoneType": "Mobile Phone" if donor.phone else "",
        "phone": donor.phone,
        **dict(donor.address),
    }
    return OutboundRequest(
        Operation.CONTACT_TRANSACTION,
        ctx.source_name,
        donor.reference,
        {k: v for k, v in payload.items() if v},
        idempotency_key=f"{Operation.CONTACT_TRANSACTION}:{ctx.source_name}:{donor.reference}:{occasion}",
    )


def _project(ctx: MappingContext, *metadata: dict[str, Any]) -> str:
    for meta in metadata:
        code = _text(meta.get(PROJECT_METADATA_KEY), f"metadata.{PROJECT_METADATA_KEY}")
        if code:
            return code
    key = str(ctx.settings.get("campaign_metadata_key") or "campaign")
    return ctx.project_code(*(_text(meta.get(key), f"metadata.{key}") or None for meta in metadata))


def _gift_requests(
    ctx: MappingContext,
    *,
    payment_id: str,
    amount_minor: Any,
    currency: Any,
    paid_at: datetime,
    method: str,
    donor: Donor,
    metadata: tuple[dict[str, Any], ...],
    description: Any = None,
    recurring_id: str = "",
) -> list[OutboundRequest]:
    if not payment_id.startswith("pi_"):
        raise MappingError(f"Expected a PaymentIntent id (pi_...), got {payment_id!r}")
    amount, code = amount_from_minor(amount_minor, currency)
    if not donor.reference and not donor.email:
        raise MappingError(f"Payment {payment_id} has neither a Stripe customer nor an e-mail")
    project = _project(ctx, *metadata)
    contact = {
        "referenceId": donor.reference,
        "firstName": donor.first_name,
        "lastName": donor.last_name,
        "email": donor.email,
    }
    gift: dict[str, Any] = {
        "transactionSource": ctx.source_name,
        "transactionId": payment_id,
        "contact": {k: v for k, v in contact.items() if v},
        "giftDate": ctx.local_date(paid_at),
        "giftType": gift_type(method),
        "amount": amount,
        "currencyCode": code,
        "designations": [{"projectCode": project, "amountDesignated": amount}],
    }
    notes = description[:1000].strip() if isinstance(description, str) else ""
    if notes:
        gift["notes"] = notes
    if recurring_id:
        gift["recurringGiftTransactionId"] = recurring_id
    requests = [
        OutboundRequest(
            Operation.GIFT_TRANSACTION, ctx.source_name, payment_id, gift, partner_modified_at=paid_at
        )
    ]
    contact_write = contact_request(ctx, donor, occasion=payment_id)
    return [contact_write, *requests] if contact_write else requests


def _charge_method(charge: dict[str, Any]) -> str:
    return _text(_dict(charge.get("payment_method_details"), "payment_method_details").get("type"), "type")


def _intent_charge(intent: dict[str, Any]) -> dict[str, Any]:
    """The PaymentIntent's charge when the payload includes it (expanded, or pre-2022 ``charges``)."""
    if isinstance(intent.get("latest_charge"), dict):
        return intent["latest_charge"]
    charges = _dict(intent.get("charges"), "charges").get("data") or []
    return charges[0] if isinstance(charges, list) and charges and isinstance(charges[0], dict) else {}


def payment_intent_succeeded(ctx: MappingContext, event: dict[str, Any]) -> Outcome:
    """A one-time (or any) payment → a Gift Transaction keyed on the PaymentIntent.

    The charges poller sends the same event type with the Charge as ``data.object``; it maps to
    the same gift key through the charge's ``payment_intent``.
    """
    obj = _dict(_dict(event.get("data"), "data").get("object"), "data.object")
    if obj.get("object") == "charge":
        return _charge_gift(ctx, obj)
    intent = _object(event, "payment_intent")
    if intent.get("status") != "succeeded":
        return Outcome(note=f"PaymentIntent status {intent.get('status')!r}: no gift until it succeeds")
    charge = _intent_charge(intent)
    types = intent.get("payment_method_types") or []
    method = _charge_method(charge) if charge else (types[0] if len(types) == 1 else "")
    donor = _donor(
        ("billing_details", _dict(charge.get("billing_details"), "billing_details")),
        ("customer", _customer_details(intent.get("customer"))),
        ("shipping", _dict(intent.get("shipping"), "shipping")),
        ("receipt", {"email": intent.get("receipt_email")}),
        reference=intent.get("customer"),
    )
    return Outcome(
        requests=_gift_requests(
            ctx,
            payment_id=_text(intent.get("id"), "id"),
            amount_minor=intent.get("amount_received") or intent.get("amount"),
            currency=intent.get("currency"),
            paid_at=_when(intent.get("created"), "created"),
            method=str(method),
            donor=donor,
            metadata=(_dict(intent.get("metadata"), "metadata"),),
            description=intent.get("description"),
        )
    )


def _charge_gift(ctx: MappingContext, charge: dict[str, Any]) -> Outcome:
    if charge.get("status") != "succeeded" or charge.get("captured") is False:
        return Outcome(note=f"Charge status {charge.get('status')!r}: no gift until it is captured")
    payment_id = _id(charge.get("payment_intent"), "payment_intent")
    if not payment_id:
        raise MappingError(f"Charge {charge.get('id')} has no PaymentIntent; gifts are keyed on pi_ ids")
    donor = _donor(
        ("billing_details", _dict(charge.get("billing_details"), "billing_details")),
        ("customer", _customer_details(charge.get("customer"))),
        ("receipt", {"email": charge.get("receipt_email")}),
        reference=charge.get("customer"),
    )
    return Outcome(
        requests=_gift_requests(
            ctx,
            payment_id=payment_id,
            amount_minor=charge.get("amount_captured") or charge.get("amount"),
            currency=charge.get("currency"),
            paid_at=_when(charge.get("created"), "created"),
            method=_charge_method(charge),
            donor=donor,
            metadata=(_dict(charge.get("metadata"), "metadata"),),
            description=charge.get("description"),
        )
    )


def _invoice_subscription(invoice: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(subscription id, its metadata) in either invoice shape (pre- and post-2025 API versions)."""
    details = _dict(
        _dict(invoice.get("parent"), "parent").get("subscription_details"), "subscription_details"
    )
    legacy_details = _dict(invoice.get("subscription_details"), "subscription_details")
    sub = _id(invoice.get("subscription"), "subscription") or _id(details.get("subscription"), "subscription")
    metadata = _dict(details.get("metadata"), "metadata") or _dict(legacy_details.get("metadata"), "metadata")
    return sub, metadata


def _invoice_payment_intent(invoice: dict[str, Any]) -> str:
    direct = _id(invoice.get("payment_intent"), "payment_intent")
    if direct:
        return direct
    payments = _dict(invoice.get("payments"), "payments").get("data") or []
    for entry in payments if isinstance(payments, list) else []:
        payment = _dict(_dict(entry, "payment").get("payment"), "payment")
        if entry.get("status") in (None, "paid") and payment.get("payment_intent"):
            return _id(payment["payment_intent"], "payment_intent")
    return ""


def invoice_paid(ctx: MappingContext, event: dict[str, Any]) -> Outcome:
    """A subscription (or invoice) payment → the gift of its PaymentIntent, linked to the schedule."""
    invoice = _object(event, "invoice")
    amount_paid = invoice.get("amount_paid")
    if amount_paid == 0:
        return Outcome(note=f"Invoice {invoice.get('id')} was settled without a payment: no gift")
    payment_id = _invoice_payment_intent(invoice)
    if not payment_id:
        if invoice.get("paid_out_of_band"):
            return Outcome(
                review_reason=f"Invoice {invoice.get('id')} was marked paid outside Stripe: record the gift by hand"
            )
        return Outcome(
            note=f"Invoice {invoice.get('id')} names no PaymentIntent; payment_intent.succeeded records the gift"
        )
    subscription, sub_metadata = _invoice_subscription(invoice)
    paid_at = _dict(invoice.get("status_transitions"), "status_transitions").get("paid_at")
    donor = _donor(
        (
            "invoice",
            {
                "name": invoice.get("customer_name"),
                "email": invoice.get("customer_email"),
                "phone": invoice.get("customer_phone"),
                "address": invoice.get("customer_address"),
            },
        ),
        ("customer", _customer_details(invoice.get("customer"))),
        reference=invoice.get("customer"),
    )
    return Outcome(
        requests=_gift_requests(
            ctx,
            payment_id=payment_id,
            amount_minor=amount_paid,
            currency=invoice.get("currency"),
            paid_at=_when(paid_at or invoice.get("created"), "status_transitions.paid_at"),
            method="",
            donor=donor,
            metadata=(_dict(invoice.get("metadata"), "metadata"), sub_metadata),
            description=invoice.get("description"),
            recurring_id=subscription,
        )
    )


def charge_refunded(ctx: MappingContext, event: dict[str, Any]) -> Outcome:
    """A full refund → a Reversing Transaction of the PaymentIntent's gift; partial → review.

    The submitter resolves the gift by its transaction ids and waits while Virtuous has not
    created it yet (a refund can arrive before the nightly batch).
    """
    charge = _object(event, "charge")
    payment_id = _id(charge.get("payment_intent"), "payment_intent")
    charge_id = _text(charge.get("id"), "id")
    if not payment_id or not charge_id:
        raise MappingError(f"Refunded charge {charge_id or '?'} names no PaymentIntent to reverse")
    refunded, code = amount_from_minor(charge.get("amount_refunded"), charge.get("currency"))
    captured, _ = amount_from_minor(charge.get("amount_captured") or charge.get("amount"), code)
    if refunded != captured:
        return Outcome(
            review_reason=(
                f"Partial refund of {refunded} {code} on {captured} {code} ({payment_id}); Virtuous reverses "
                "whole gifts: adjust this gift by hand"
            )
        )
    refunded_at = _when(event.get("created"), "event created")
    reason = ""
    refunds = _dict(charge.get("refunds"), "refunds").get("data") or []
    if isinstance(refunds, list) and refunds and isinstance(refunds[0], dict):
        reason = _text(refunds[0].get("reason"), "refund reason")
    return Outcome(
        requests=[
            ctx.reversal(
                payment_id,
                key=f"{payment_id}-refund-{charge_id}",
                on=refunded_at,
                notes=f"Refunded in Stripe ({charge_id}{': ' + reason if reason else ''})",
            )
        ]
    )


def charge_dispute_created(ctx: MappingContext, event: dict[str, Any]) -> Outcome:
    """A dispute moves no money yet; a person decides whether the gift stands."""
    dispute = _object(event, "dispute")
    amount = dispute.get("amount")
    try:
        shown = " ".join(str(x) for x in amount_from_minor(amount, dispute.get("currency")))
    except MappingError:
        shown = f"{amount!r} {dispute.get('currency')!r}"
    return Outcome(
        review_reason=(
            f"Dispute {dispute.get('id')} opened on {_id(dispute.get('payment_intent'), 'payment_intent') or '?'} "
            f"(charge {_id(dispute.get('charge'), 'charge') or '?'}) for {shown}, reason "
            f"{dispute.get('reason')!r}: review the gift; reverse it if the dispute is lost"
        )
    )


def _schedule_amount(subscription: dict[str, Any]) -> tuple[Decimal, str, str]:
    """(amount per period, currency, frequency) from the subscription's items and their prices."""
    items = _dict(subscription.get("items"), "items").get("data")
    if not isinstance(items, list) or not items:
        raise MappingError(f"Subscription {subscription.get('id')} has no items")
    total = 0
    currency = subscription.get("currency")
    frequencies = set()
    for raw in items:
        item = _dict(raw, "item")
        price = _dict(item.get("price") or item.get("plan"), "price")
        recurring = _dict(price.get("recurring"), "price.recurring")
        interval = recurring.get("interval") or price.get("interval")
        count = recurring.get("interval_count") or price.get("interval_count") or 1
        frequencies.add((str(interval), count if isinstance(count, int) else str(count)))
        unit = price.get("unit_amount", price.get("amount"))
        quantity = item.get("quantity", 1)
        if isinstance(unit, bool) or not isinstance(unit, int):
            raise MappingError(f"Price {price.get('id')} has no fixed unit amount (tiered or custom pricing)")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
            raise MappingError(f"Subscription item {item.get('id')} has quantity {quantity!r}")
        total += unit * quantity
        currency = currency or price.get("currency")
    if len(frequencies) != 1:
        raise MappingError(f"Subscription {subscription.get('id')} mixes billing intervals")
    interval = frequencies.pop()
    frequency = FREQUENCIES.get(interval)
    if frequency is None:
        raise MappingError(f"No Virtuous frequency for every {interval[1]} {interval[0]}(s)")
    amount, code = amount_from_minor(total, currency)
    return amount, code, frequency


def subscription_changed(ctx: MappingContext, event: dict[str, Any]) -> Outcome:
    """``customer.subscription.created`` / ``.updated`` → a Recurring Gift schedule keyed on ``sub_...``."""
    subscription = _object(event, "subscription")
    sub_id = _text(subscription.get("id"), "id")
    status = subscription.get("status")
    if not sub_id.startswith("sub_"):
        raise MappingError(f"Expected a subscription id (sub_...), got {sub_id!r}")
    if status == "canceled":
        return _cancel(ctx, subscription)
    if status in ("incomplete", "incomplete_expired"):
        return Outcome(note=f"Subscription {sub_id} is {status}: no schedule until its first payment")
    if status == "paused":
        return Outcome(review_reason=f"Subscription {sub_id} is paused in Stripe; Virtuous has no pause")
    donor = _donor(
        ("customer", _customer_details(subscription.get("customer"))), reference=subscription.get("customer")
    )
    if not donor.reference:
        raise MappingError(f"Subscription {sub_id} has no customer")
    amount, _, frequency = _schedule_amount(subscription)
    project = _project(ctx, _dict(subscription.get("metadata"), "metadata"))
    started = _when(subscription.get("start_date") or subscription.get("created"), "start_date")
    schedule: dict[str, Any] = {
        "transactionSource": ctx.source_name,
        "transactionId": sub_id,
        "contact": {"referenceSource": ctx.source_name, "referenceId": donor.reference, "email": donor.email},
        "startDate": ctx.local_date(started),
        "frequency": frequency,
        "amount": amount,
        "designations": [{"projectCode": project, "amountDesignated": amount}],
        "automatedPayments": True,
        "trackPayments": True,
    }
    period_end = subscription.get("current_period_end")
    if isinstance(period_end, int) and not isinstance(period_end, bool) and period_end > 0:
        schedule["nextExpectedPaymentDate"] = ctx.local_date(_when(period_end, "current_period_end"))
    requests = [OutboundRequest(Operation.RECURRING_GIFT_CREATE, ctx.source_name, sub_id, schedule)]
    contact_write = contact_request(ctx, donor, occasion=sub_id)
    if contact_write:
        requests.insert(0, contact_write)
    previous = _dict(_dict(event.get("data"), "data").get("previous_attributes"), "previous_attributes")
    if event.get("type") == "customer.subscription.updated" and (
        "items" in previous or "quantity" in previous
    ):
        return Outcome(
            requests=requests,
            review_reason=(
                f"Subscription {sub_id} changed to {amount} {frequency}: a schedule already in Virtuous "
                "keeps its old amount until it is edited there"
            ),
        )
    return Outcome(requests=requests)


def _cancel(ctx: MappingContext, subscription: dict[str, Any]) -> Outcome:
    sub_id = _text(subscription.get("id"), "id")
    details = _dict(subscription.get("cancellation_details"), "cancellation_details")
    why = _text(details.get("reason"), "cancellation reason") or "canceled"
    return Outcome(
        requests=[ctx.recurring_cancel(sub_id, reason=f"Subscription {sub_id} ended in Stripe ({why})")]
    )


def subscription_deleted(ctx: MappingContext, event: dict[str, Any]) -> Outcome:
    """``customer.subscription.deleted`` → cancel the schedule."""
    subscription = _object(event, "subscription")
    if not _text(subscription.get("id"), "id").startswith("sub_"):
        raise MappingError(f"Expected a subscription id (sub_...), got {subscription.get('id')!r}")
    return _cancel(ctx, subscription)


def checkout_session_completed(ctx: MappingContext, event: dict[str, Any]) -> Outcome:
    """Donor enrichment: the checkout's name, e-mail, phone and address for the Customer."""
    session = _object(event, "checkout.session")
    donor = _donor(
        ("customer_details", _dict(session.get("customer_details"), "customer_details")),
        ("session", {"email": session.get("customer_email")}),
        reference=session.get("customer"),
    )
    if not donor.reference:
        return Outcome(note="Guest checkout (no Stripe customer): the gift carries the donor's e-mail")
    write = contact_request(ctx, donor, occasion=_text(session.get("id"), "id"))
    if write is None:
        return Outcome(note=f"Checkout {session.get('id')} carries no donor details")
    return Outcome(requests=[write])


HANDLERS = {
    "payment_intent.succeeded": payment_intent_succeeded,
    "charge.refunded": charge_refunded,
    "charge.dispute.created": charge_dispute_created,
    "customer.subscription.created": subscription_changed,
    "customer.subscription.updated": subscription_changed,
    "customer.subscription.deleted": subscription_deleted,
    "invoice.paid": invoice_paid,
    "checkout.session.completed": checkout_session_completed,
}
