"""The order splitter, line by line: composite ids, amounts, premiums, non-cash, raffles, refunds."""

from decimal import Decimal

import pytest

from integrations.auction import webhooks
from integrations.auction.mapping import order_completed, order_reversed
from integrations.common.mapping import MappingContext
from integrations.types import MappingError
from sync.inbound.drain import inbound_drain
from sync.models import OutboundItem
from tests.integrations.conftest import fixture_bytes

PREMIUMS = {"GALA-SEAT": 301, "LOT-12": 302, "sponsorship": 303}


def ctx(**settings) -> MappingContext:
    return MappingContext(
        tenant_slug="alpha",
        time_zone="America/New_York",
        source_name="Auction",
        project_code_map={"GALA26": "GALA-2026", "GALA26:auction_win": "GALA-AUCTION"},
        settings={"premium_map": PREMIUMS, **settings},
    )


def payload(name: str, **changes) -> dict:
    data = webhooks.load(fixture_bytes("auction", name))
    data["order"].update(changes)
    return data


def by_key(outcome) -> dict:
    """Requests by operation:source:id (contact keys also carry a content fingerprint)."""
    return {f"{r.operation}:{r.external_source}:{r.external_id}": r for r in outcome.requests}


def test_completed_order_splits_into_one_gift_per_line():
    outcome = order_completed(ctx(), payload("order.completed.json"))
    requests = by_key(outcome)
    gifts = {r.external_id: r.payload for r in outcome.requests if r.operation == "gift_transaction"}
    assert list(gifts) == [
        "A1001-ticket-1",
        "A1001-auction_win-2",
        "A1001-paddle_raise-3",
        "A1001-donation-4",
        "A1001-donated_item-6",
    ]
    assert {k: g["amount"] for k, g in gifts.items()} == {
        "A1001-ticket-1": Decimal("500.00"),
        "A1001-auction_win-2": Decimal("1200.00"),
        "A1001-paddle_raise-3": Decimal("1000.00"),
        "A1001-donation-4": Decimal("150.00"),
        "A1001-donated_item-6": Decimal("800.00"),
    }
    assert sum(g["amount"] for g in gifts.values()) == Decimal("3650.00")
    assert "A1001-raffle-5: raffle, not deductible, skipped" in outcome.note
    assert outcome.review_reason == ""
    assert set(requests) >= {"contact_transaction:Auction:P-5001", "contact_transaction:Auction:P-7310"}
    for gift in gifts.values():
        assert gift["designations"][0]["amountDesignated"] == gift["amount"]
        assert gift["giftDate"] == "2026-04-17"  # 03:04 UTC is the evening before in New York
        assert gift["transactionSource"] == "Auction"


def test_premium_lines_carry_the_fair_market_value():
    gifts = {
        r.external_id: r.payload for r in order_completed(ctx(), payload("order.completed.json")).requests
    }
    ticket = gifts["A1001-ticket-1"]
    assert ticket["giftPremiums"] == [{"premiumId": 301, "quantity": 2, "valuePerItem": Decimal("90.00")}]
    assert ticket["notes"] == "Ticket: Gala seat x2; fair-market value 180.00, deductible 320.00"
    assert ticket["designations"] == [{"projectCode": "GALA-2026", "amountDesignated": Decimal("500.00")}]
    win = gifts["A1001-auction_win-2"]
    assert win["giftPremiums"] == [{"premiumId": 302, "quantity": 1, "valuePerItem": Decimal("800.00")}]
    assert win["notes"].endswith("deductible 400.00")
    assert win["designations"][0]["projectCode"] == "GALA-AUCTION"  # event:line-type beats event
    for plain in ("A1001-paddle_raise-3", "A1001-donation-4"):
        assert "giftPremiums" not in gifts[plain] and gifts[plain]["giftType"] == "Credit"


def test_donated_item_is_a_non_cash_gift_from_the_item_donor():
    gifts = {
        r.external_id: r.payload for r in order_completed(ctx(), payload("order.completed.json")).requests
    }
    item = gifts["A1001-donated_item-6"]
    assert item["contact"] == {
        "referenceId": "P-7310",
        "firstName": "Enzo",
        "lastName": "Moretti",
        "email": "enzo@example.it",
    }
    assert (item["giftType"], item["nonCashGiftType"], item["inKindValue"]) == (
        "NonCash",
        "In-Kind",
        Decimal("800.00"),
    )
    assert (
        item["inKindDescription"] == item["nonCashGiftDescription"] == "Seven nights in a Chianti farmhouse"
    )
    custom = order_completed(ctx(non_cash_gift_type="Auction Item"), payload("order.completed.json"))
    assert (
        by_key(custom)["gift_transaction:Auction:A1001-donated_item-6"].payload["nonCashGiftType"]
        == "Auction Item"
    )


def test_raffle_goes_to_a_non_deductible_designation_when_one_is_set():
    gifts = {
        r.external_id: r.payload
        for r in order_completed(
            ctx(raffle_project_code="RAFFLE-ND"), payload("order.completed.json")
        ).requests
    }
    raffle = gifts["A1001-raffle-5"]
    assert raffle["isTaxDeductible"] is False and raffle["amount"] == Decimal("20.00")
    assert raffle["designations"] == [{"projectCode": "RAFFLE-ND", "amountDesignated": Decimal("20.00")}]


def test_refund_reverses_each_listed_line_and_skips_the_raffle():
    outcome = order_reversed(ctx(), payload("order.refunded.json"))
    reversals = [r for r in outcome.requests if r.operation == "reversing_transaction"]
    assert [r.external_id for r in reversals] == ["A1001-ticket-1-refund"]
    assert reversals[0].payload == {
        "reversedTransaction": {"transactionSource": "Auction", "transactionId": "A1001-ticket-1"},
        "giftDate": "2026-04-25",
        "notes": "Refunded on the event platform",
    }
    gifts = [r.external_id for r in outcome.requests if r.operation == "gift_transaction"]
    assert gifts == ["A1001-ticket-1"]  # the same key as the original, so it is never doubled


def test_corporate_sponsor_is_an_organization_and_a_void_reverses_it():
    outcome = order_reversed(ctx(), payload("order.voided.json"))
    requests = by_key(outcome)
    sponsor = requests["contact_transaction:Auction:ORG-88"].payload
    assert sponsor["contactType"] == "Organization" and sponsor["name"] == "Tidewater Shipbuilding Co."
    gift = requests["gift_transaction:Auction:A1002-sponsorship-1"].payload
    assert gift["contact"]["type"] == "Organization" and gift["giftType"] == "Check"
    assert gift["giftPremiums"] == [{"premiumId": 303, "quantity": 1, "valuePerItem": Decimal("1800.00")}]
    assert "reversing_transaction:Auction:A1002-sponsorship-1-refund" in requests


def test_walk_up_without_an_id_goes_to_review_with_nothing_enqueued():
    order = payload("order.completed.json", buyer={"first_name": "Walk", "last_name": "Up"})
    outcome = order_completed(ctx(), order)
    assert outcome.requests == []
    assert "Walk Up has no id" in outcome.review_reason


def test_unpaid_paddle_raise_is_a_pledge_for_review_and_the_rest_still_goes():
    order = payload("order.completed.json")
    order["order"]["lines"][2]["paid"] = False
    outcome = order_completed(ctx(), order)
    assert "A1001-paddle_raise-3: paddle raise pledged but not paid" in outcome.review_reason
    assert "gift_transaction:Auction:A1001-paddle_raise-3" not in by_key(outcome)
    assert "gift_transaction:Auction:A1001-ticket-1" in by_key(outcome)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"premium_map": {}}, "no premium is mapped for 'GALA-SEAT'"),
        ({"line": {"type": "bake_sale"}}, "unknown line type"),
        ({"line": {"amount": "-5.00"}}, "must be positive"),
        ({"line": {"amount": "5.001"}}, "more than two decimals"),
        ({"line": {"quantity": 0}}, "between 1 and 10000"),
        ({"line": {"line_no": None}}, "line number is missing"),
        ({"order": {"currency": "dollars"}}, "Unknown currency"),
        ({"order": {"event": {"id": "UNMAPPED"}}}, "No Virtuous project code"),
        ({"order": {"lines": []}}, "has no lines"),
        ({"duplicate": True}, "twice"),
    ],
)
def test_bad_orders_raise_a_clear_mapping_error(change, message):
    order = payload("order.completed.json", **change.get("order", {}))
    if "line" in change:
        order["order"]["lines"][0].update(change["line"])
    if "duplicate" in change:
        order["order"]["lines"].append(dict(order["order"]["lines"][0]))
    settings = {"premium_map": change["premium_map"]} if "premium_map" in change else {}
    with pytest.raises(MappingError, match=message):
        order_completed(ctx(**settings), order)


def test_drained_order_enqueues_every_line_once(client, tenant, make_connection):
    from django.urls import reverse

    connection = make_connection(
        tenant, "auction", secret="s3cret-relay", default_project_code="", settings={"premium_map": PREMIUMS}
    )
    connection.project_code_map = {"GALA26": "GALA-2026"}
    connection.save()
    body = fixture_bytes("auction", "order.completed.json")
    url = reverse("integrations:receive", args=[connection.webhook_token])
    for _ in range(2):
        client.post(
            url,
            data=body,
            content_type="application/json",
            HTTP_X_SIGNATURE=webhooks.sign(body, "s3cret-relay"),
        )
    inbound_drain(seconds=0)
    gifts = OutboundItem.objects.filter(operation="gift_transaction").order_by("external_id")
    assert [g.external_id for g in gifts] == [
        "A1001-auction_win-2",
        "A1001-donated_item-6",
        "A1001-donation-4",
        "A1001-paddle_raise-3",
        "A1001-ticket-1",
    ]
    ticket = gifts.get(external_id="A1001-ticket-1").payload
    assert ticket["amount"] == "500.00"  # stored exactly, never through float
    assert ticket["giftPremiums"] == [{"premiumId": 301, "quantity": 2, "valuePerItem": "90.00"}]
