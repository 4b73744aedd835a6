import copy
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.common.mapping import MappingContext
from integrations.stripe import mapping
from integrations.stripe.mapping import HANDLERS, amount_from_minor
from integrations.types import MalformedPayload, MappingError, Operation
from tests.integrations.conftest import fixture_json


def ctx(**overrides) -> MappingContext:
    values = {
        "tenant_slug": "alpha",
        "time_zone": "America/Chicago",
        "source_name": "Stripe",
        "default_project_code": "",
        "project_code_map": {"winter-2026": "WINTER"},
    }
    values.update(overrides)
    return MappingContext(**values)


def event(name: str) -> dict:
    return fixture_json("stripe", f"{name}.json")


def by_operation(outcome) -> dict:
    return {r.operation: r for r in outcome.requests}


def test_payment_intent_becomes_a_gift_keyed_on_the_intent_and_a_contact():
    outcome = mapping.payment_intent_succeeded(ctx(), event("payment_intent.succeeded"))
    gift = by_operation(outcome)[Operation.GIFT_TRANSACTION]
    assert gift.key == "gift_transaction:Stripe:pi_3QpI7nK2aXc0A1b21TqB9wZx"
    assert gift.payload["amount"] == Decimal("50.00") and gift.payload["currencyCode"] == "USD"
    assert gift.payload["giftDate"] == "2026-11-20"  # 23:30 UTC is 17:30 in Chicago
    assert gift.payload["giftType"] == "Credit"
    assert gift.payload["contact"] == {"referenceId": "cus_RhQ1aZb2Cd3Ef4", "email": "ada@example.org"}
    assert gift.payload["designations"] == [{"projectCode": "WINTER", "amountDesignated": Decimal("50.00")}]
    contact = by_operation(outcome)[Operation.CONTACT_TRANSACTION]
    assert contact.external_id == "cus_RhQ1aZb2Cd3Ef4" and contact.payload["email"] == "ada@example.org"
    assert contact.payload["referenceSource"] == "Stripe"


def test_project_code_in_metadata_wins_over_the_map():
    e = event("payment_intent.succeeded")
    e["data"]["object"]["metadata"]["virtuous_project_code"] = "FOOD"
    gift = by_operation(mapping.payment_intent_succeeded(ctx(), e))[Operation.GIFT_TRANSACTION]
    assert gift.payload["designations"][0]["projectCode"] == "FOOD"


def test_campaign_key_is_configurable_and_unmapped_without_default_is_an_error():
    e = event("payment_intent.succeeded")
    e["data"]["object"]["metadata"] = {"appeal": "winter-2026"}
    gift = by_operation(
        mapping.payment_intent_succeeded(ctx(settings={"campaign_metadata_key": "appeal"}), e)
    )[Operation.GIFT_TRANSACTION]
    assert gift.payload["designations"][0]["projectCode"] == "WINTER"
    with pytest.raises(MappingError, match="No Virtuous project code"):
        mapping.payment_intent_succeeded(ctx(), e)
    gift = by_operation(mapping.payment_intent_succeeded(ctx(default_project_code="GEN"), e))
    assert gift[Operation.GIFT_TRANSACTION].payload["designations"][0]["projectCode"] == "GEN"


@pytest.mark.parametrize(
    "minor,currency,expected",
    [
        (5000, "jpy", Decimal("5000")),
        (5000, "KRW", Decimal("5000")),
        (5000, "kwd", Decimal("5.000")),
        (1, "bhd", Decimal("0.001")),
        (12345, "jod", Decimal("12.345")),
        (1, "omr", Decimal("0.001")),
        (1000, "tnd", Decimal("1.000")),
        (1999, "eur", Decimal("19.99")),
    ],
)
def test_minor_units_use_the_currency_exponent(minor, currency, expected):
    amount, code = amount_from_minor(minor, currency)
    assert amount == expected and str(amount) == str(expected) and code == currency.upper()


def test_zero_decimal_gift_end_to_end_through_the_handler():
    e = event("payment_intent.succeeded")
    e["data"]["object"].update(currency="jpy", amount=5000, amount_received=5000)
    gift = by_operation(mapping.payment_intent_succeeded(ctx(), e))[Operation.GIFT_TRANSACTION]
    assert (gift.payload["amount"], gift.payload["currencyCode"]) == (Decimal("5000"), "JPY")


@pytest.mark.parametrize(
    "minor,currency,message",
    [
        (0, "usd", "positive"),
        (-500, "usd", "positive"),
        (50.5, "usd", "integer"),
        ("5000", "usd", "integer"),
        (True, "usd", "integer"),
        (5000, "xyz", "Unknown currency"),
        (5000, None, "Unknown currency"),
    ],
)
def test_odd_amounts_and_currencies_are_mapping_errors(minor, currency, message):
    e = event("payment_intent.succeeded")
    e["data"]["object"].update(currency=currency, amount=minor, amount_received=minor)
    with pytest.raises(MappingError, match=message):
        mapping.payment_intent_succeeded(ctx(), e)


def test_bank_debits_are_eft():
    e = event("payment_intent.succeeded")
    e["data"]["object"]["payment_method_types"] = ["us_bank_account"]
    gift = by_operation(mapping.payment_intent_succeeded(ctx(), e))[Operation.GIFT_TRANSACTION]
    assert gift.payload["giftType"] == "EFT"


def test_intent_not_succeeded_makes_nothing():
    e = event("payment_intent.succeeded")
    e["data"]["object"]["status"] = "processing"
    assert mapping.payment_intent_succeeded(ctx(), e).requests == []


def test_guest_payment_uses_the_email_and_makes_no_contact_transaction():
    e = event("payment_intent.succeeded")
    e["data"]["object"]["customer"] = None
    outcome = mapping.payment_intent_succeeded(ctx(), e)
    assert [r.operation for r in outcome.requests] == [Operation.GIFT_TRANSACTION]
    assert outcome.requests[0].payload["contact"] == {"email": "ada@example.org"}
    e["data"]["object"]["receipt_email"] = None
    with pytest.raises(MappingError, match="neither a Stripe customer nor an e-mail"):
        mapping.payment_intent_succeeded(ctx(), e)


def test_invoice_paid_is_the_same_gift_key_as_its_payment_intent_and_links_the_schedule():
    invoice = event("invoice.paid")
    intent = event("payment_intent.succeeded")
    intent["data"]["object"].update(id="pi_3QpJ0bK2aXc0A1b20Sub1Pay", amount=2000, amount_received=2000)
    from_invoice = by_operation(mapping.invoice_paid(ctx(), invoice))[Operation.GIFT_TRANSACTION]
    from_intent = by_operation(mapping.payment_intent_succeeded(ctx(), intent))[Operation.GIFT_TRANSACTION]
    assert from_invoice.key == from_intent.key == "gift_transaction:Stripe:pi_3QpJ0bK2aXc0A1b20Sub1Pay"
    assert from_invoice.payload["recurringGiftTransactionId"] == "sub_1QpJ0aK2aXc0A1b2Mq4nR5sT"
    assert from_invoice.payload["amount"] == Decimal("20.00")
    assert from_invoice.payload["designations"][0]["projectCode"] == "MONTHLY"  # subscription metadata


def test_invoice_paid_in_the_2025_api_shape():
    e = event("invoice.paid")
    inv = e["data"]["object"]
    for legacy in ("payment_intent", "subscription", "subscription_details", "charge"):
        inv.pop(legacy)
    inv["parent"] = {
        "type": "subscription_details",
        "subscription_details": {
            "subscription": "sub_1QpJ0aK2aXc0A1b2Mq4nR5sT",
            "metadata": {"virtuous_project_code": "MONTHLY"},
        },
    }
    inv["payments"] = {
        "object": "list",
        "data": [
            {
                "status": "paid",
                "payment": {"type": "payment_intent", "payment_intent": "pi_3QpJ0bK2aXc0A1b20Sub1Pay"},
            }
        ],
    }
    gift = by_operation(mapping.invoice_paid(ctx(), e))[Operation.GIFT_TRANSACTION]
    assert gift.external_id == "pi_3QpJ0bK2aXc0A1b20Sub1Pay"
    assert gift.payload["recurringGiftTransactionId"] == "sub_1QpJ0aK2aXc0A1b2Mq4nR5sT"
    inv.pop("payments")
    outcome = mapping.invoice_paid(ctx(), e)
    assert outcome.requests == [] and "payment_intent.succeeded records the gift" in outcome.note


def test_invoice_paid_without_money_or_out_of_band():
    e = event("invoice.paid")
    e["data"]["object"]["amount_paid"] = 0
    assert mapping.invoice_paid(ctx(), e).requests == []
    e = event("invoice.paid")
    e["data"]["object"].update(payment_intent=None, paid_out_of_band=True)
    assert "outside Stripe" in mapping.invoice_paid(ctx(), e).review_reason


def test_full_refund_reverses_the_intents_gift():
    outcome = mapping.charge_refunded(ctx(), event("charge.refunded"))
    (reversal,) = outcome.requests
    assert reversal.operation == Operation.REVERSING_TRANSACTION
    assert reversal.external_id == "pi_3QpI7nK2aXc0A1b21TqB9wZx-refund-ch_3QpI7nK2aXc0A1b21yVw1Hk2"
    assert reversal.payload == {
        "reversedTransaction": {
            "transactionSource": "Stripe",
            "transactionId": "pi_3QpI7nK2aXc0A1b21TqB9wZx",
        },
        "giftDate": "2026-11-22",
        "notes": "Refunded in Stripe (ch_3QpI7nK2aXc0A1b21yVw1Hk2: requested_by_customer)",
    }


def test_partial_refund_goes_to_review_without_a_write():
    e = event("charge.refunded")
    e["data"]["object"]["amount_refunded"] = 1500
    outcome = mapping.charge_refunded(ctx(), e)
    assert outcome.requests == [] and "Partial refund of 15.00 USD on 50.00 USD" in outcome.review_reason


def test_dispute_is_surfaced_for_review_only():
    outcome = mapping.charge_dispute_created(ctx(), event("charge.dispute.created"))
    assert outcome.requests == []
    assert "dp_1QqA2bK2aXc0A1b2Hq8rS9tU" in outcome.review_reason and "50.00 USD" in outcome.review_reason


def test_subscription_created_is_a_recurring_gift_for_the_customer():
    (schedule,) = mapping.subscription_changed(ctx(), event("customer.subscription.created")).requests
    assert schedule.operation == Operation.RECURRING_GIFT_CREATE
    assert schedule.external_id == "sub_1QpJ0aK2aXc0A1b2Mq4nR5sT"
    assert schedule.payload["contact"] == {
        "referenceSource": "Stripe",
        "referenceId": "cus_RhQ1aZb2Cd3Ef4",
        "email": "",
    }
    assert schedule.payload["amount"] == Decimal("20.00")  # 1000 cents x quantity 2
    assert schedule.payload["frequency"] == "Monthly"
    assert schedule.payload["startDate"] == "2026-11-21"
    assert schedule.payload["designations"] == [
        {"projectCode": "MONTHLY", "amountDesignated": Decimal("20.00")}
    ]


@pytest.mark.parametrize(
    "interval,count,expected",
    [("week", 1, "Weekly"), ("month", 3, "Quarterly"), ("year", 1, "Annually"), ("month", 12, "Annually")],
)
def test_subscription_frequency_from_the_price(interval, count, expected):
    e = event("customer.subscription.created")
    e["data"]["object"]["items"]["data"][0]["price"]["recurring"].update(
        interval=interval, interval_count=count
    )
    (schedule,) = mapping.subscription_changed(ctx(), e).requests
    assert schedule.payload["frequency"] == expected


def test_subscription_with_an_unknown_frequency_or_no_unit_amount_is_an_error():
    e = event("customer.subscription.created")
    e["data"]["object"]["items"]["data"][0]["price"]["recurring"].update(interval="day", interval_count=7)
    with pytest.raises(MappingError, match="No Virtuous frequency"):
        mapping.subscription_changed(ctx(), e)
    e = event("customer.subscription.created")
    e["data"]["object"]["items"]["data"][0]["price"]["unit_amount"] = None
    with pytest.raises(MappingError, match="no fixed unit amount"):
        mapping.subscription_changed(ctx(), e)


def test_subscription_update_keeps_the_key_and_flags_an_amount_change():
    outcome = mapping.subscription_changed(ctx(), event("customer.subscription.updated"))
    (schedule,) = outcome.requests
    assert schedule.key == "recurring_gift_create:Stripe:sub_1QpJ0aK2aXc0A1b2Mq4nR5sT"
    assert "30.00 Monthly" in outcome.review_reason


def test_incomplete_subscription_waits_and_canceled_update_cancels():
    e = event("customer.subscription.created")
    e["data"]["object"]["status"] = "incomplete"
    assert mapping.subscription_changed(ctx(), e).requests == []
    e["data"]["object"]["status"] = "canceled"
    (cancel,) = mapping.subscription_changed(ctx(), e).requests
    assert cancel.external_id == "sub_1QpJ0aK2aXc0A1b2Mq4nR5sT-cancel"


def test_subscription_deleted_cancels_the_schedule():
    (cancel,) = mapping.subscription_deleted(ctx(), event("customer.subscription.deleted")).requests
    assert cancel.operation == Operation.RECURRING_GIFT_CANCEL
    assert cancel.key == "recurring_gift_cancel:Stripe:sub_1QpJ0aK2aXc0A1b2Mq4nR5sT-cancel"
    assert cancel.payload == {
        "recurringGiftTransaction": {
            "transactionSource": "Stripe",
            "transactionId": "sub_1QpJ0aK2aXc0A1b2Mq4nR5sT",
        },
        "cancelReason": "Subscription sub_1QpJ0aK2aXc0A1b2Mq4nR5sT ended in Stripe (cancellation_requested)",
    }


def test_checkout_completed_enriches_the_customer():
    (contact,) = mapping.checkout_session_completed(ctx(), event("checkout.session.completed")).requests
    assert contact.operation == Operation.CONTACT_TRANSACTION and contact.external_id == "cus_RhQ1aZb2Cd3Ef4"
    assert contact.payload == {
        "referenceSource": "Stripe",
        "referenceId": "cus_RhQ1aZb2Cd3Ef4",
        "contactType": "Household",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "emailType": "Home Email",
        "email": "ada@example.org",
        "phoneType": "Mobile Phone",
        "phone": "+44 20 7946 0958",
        "address1": "12 St James's Square",
        "city": "London",
        "postal": "SW1Y 4JH",
        "country": "GB",
    }
    # Its key differs from the payment's contact write, so the enrichment is not swallowed by it.
    payment_contact = by_operation(mapping.payment_intent_succeeded(ctx(), event("payment_intent.succeeded")))
    assert contact.key != payment_contact[Operation.CONTACT_TRANSACTION].key


def test_every_fixture_maps_through_its_handler():
    for name, handler in HANDLERS.items():
        outcome = handler(ctx(), event(name))
        assert outcome.requests or outcome.review_reason, name


def test_handlers_refuse_the_wrong_object_type():
    e = event("charge.refunded")
    e["data"]["object"]["object"] = "payment_intent"
    with pytest.raises(MappingError, match="expected 'charge'"):
        mapping.charge_refunded(ctx(), e)


names = st.one_of(st.none(), st.text(max_size=300), st.integers(), st.lists(st.text(max_size=3), max_size=2))
amounts = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**15),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.none(),
    st.booleans(),
    st.decimals(allow_nan=False, allow_infinity=False),
)
currencies = st.one_of(
    st.sampled_from(["usd", "jpy", "kwd", "bhd", "eur", "krw", "tnd"]),
    st.text(max_size=5),
    st.none(),
    st.integers(),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(HANDLERS)),
    amount=amounts,
    currency=currencies,
    donor_name=names,
    email=names,
)
def test_mapper_never_crashes_and_never_half_maps(name, amount, currency, donor_name, email):
    e = copy.deepcopy(event(name))
    obj = e["data"]["object"]
    for key in ("amount", "amount_received", "amount_paid", "amount_captured", "amount_refunded"):
        if key in obj:
            obj[key] = amount
    if "items" in obj:
        obj["items"]["data"][0]["price"]["unit_amount"] = amount
    if "currency" in obj:
        obj["currency"] = currency
    for holder in (obj.get("billing_details"), obj.get("customer_details")):
        if isinstance(holder, dict):
            holder.update(name=donor_name, email=email)
    if "customer_name" in obj:
        obj.update(customer_name=donor_name, customer_email=email)
    if "receipt_email" in obj:
        obj["receipt_email"] = email
    try:
        outcome = HANDLERS[name](ctx(default_project_code="GEN"), e)
    except (MappingError, MalformedPayload):
        return
    for request in outcome.requests:
        payload = request.payload
        assert request.external_id and request.external_source == "Stripe"
        if "amount" in payload:
            assert isinstance(payload["amount"], Decimal) and payload["amount"] > 0
            assert sum(d["amountDesignated"] for d in payload["designations"]) == payload["amount"]
        if "currencyCode" in payload:
            assert payload["currencyCode"] in mapping.CURRENCIES
        for key in ("email", "firstName", "lastName"):
            value = payload.get(key) or (payload.get("contact") or {}).get(key) or ""
            assert isinstance(value, str) and len(value) <= mapping.MAX_TEXT
