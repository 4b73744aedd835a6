"""Every endpoint: the method, path, query string and body the client sends, and what it returns."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest
import responses

from integrations.virtuous.client import VirtuousClient
from tests.integrations.virtuous.conftest import BASE, TOKEN

GIFT = {
    "transactionSource": "Giftline",
    "transactionId": "pi_123",
    "contact": {"referenceId": "cus_9", "email": "ada@example.org"},
    "giftDate": "2026-11-20",
    "giftType": "Credit",
    "amount": Decimal("25.10"),
    "designations": [{"projectCode": "FOOD", "amountDesignated": Decimal("25.10")}],
}
GIFT_WIRE = {
    **GIFT,
    "amount": "25.10",
    "designations": [{"projectCode": "FOOD", "amountDesignated": "25.10"}],
}
CONTACT = {"referenceSource": "Giftline", "referenceId": "cus_9", "firstName": "Ada", "lastName": "Lovelace"}
GROUPS = [
    {
        "conditions": [
            {
                "parameter": "Gift Date",
                "operator": "Between",
                "value": "2026-01-01",
                "secondaryValue": "2026-01-31",
            }
        ]
    }
]

# (call, method, path with query, body sent or None, response JSON or None, expected return)
CASES = [
    (
        lambda c: c.organization_current(),
        "GET",
        "/api/Organization/Current",
        None,
        {"name": "Alpha (Sandbox)", "organizationTimeZone": "America/Chicago"},
        {"name": "Alpha (Sandbox)", "organizationTimeZone": "America/Chicago"},
    ),
    (lambda c: c.contact_transaction(CONTACT), "POST", "/api/Contact/Transaction", CONTACT, None, None),
    (
        lambda c: c.contact_batch(reference_source="Giftline", contacts=[{"referenceId": "cus_9"}]),
        "POST",
        "/api/Contact/Batch",
        {"referenceSource": "Giftline", "contacts": [{"referenceId": "cus_9"}]},
        None,
        None,
    ),
    (lambda c: c.gift_transaction(GIFT), "POST", "/api/v2/Gift/Transaction", GIFT_WIRE, None, None),
    (
        lambda c: c.gift_transactions(
            transaction_source="Giftline", transactions=[GIFT], createImport=True, importName="Nov backfill"
        ),
        "POST",
        "/api/v2/Gift/Transactions",
        {
            "transactionSource": "Giftline",
            "transactions": [GIFT_WIRE],
            "createImport": True,
            "importName": "Nov backfill",
        },
        {"importId": 7},
        {"importId": 7},
    ),
    (
        lambda c: c.gift_get_by_transaction("Giftline", "pi_1/23"),
        "GET",
        "/api/Gift/Giftline/pi_1%2F23",
        None,
        {"id": 501, "amount": 25.10},
        {"id": 501, "amount": Decimal("25.10")},
    ),
    (
        lambda c: c.contact_get_by_reference("Giftline", "cus 9"),
        "GET",
        "/api/Contact/Giftline/cus%209",
        None,
        {"id": 88},
        {"id": 88},
    ),
    (
        lambda c: c.contact_find(email="ada@example.org"),
        "GET",
        "/api/Contact/Find?email=ada%40example.org",
        None,
        {"id": 88},
        {"id": 88},
    ),
    (
        lambda c: c.contact_find(email="ada@example.org", reference_source="Giftline", reference_id="cus_9"),
        "GET",
        "/api/Contact/Find?referenceSource=Giftline&referenceId=cus_9",
        None,
        {"id": 88},
        {"id": 88},
    ),
    (
        lambda c: c.contact_query(GROUPS, sort_by="Id", include_archived=True, skip=1000, take=500),
        "POST",
        "/api/Contact/Query/FullContact?skip=1000&take=500",
        {"groups": GROUPS, "sortBy": "Id", "descending": False, "includeArchived": True},
        {"list": [{"id": 1}], "total": "1201", "extra": "ignored"},
        {"list": [{"id": 1}], "total": 1201},
    ),
    (
        lambda c: c.contact_query(GROUPS, full=False),
        "POST",
        "/api/Contact/Query?skip=0&take=1000",
        {"groups": GROUPS, "sortBy": None, "descending": False, "includeArchived": False},
        {"list": [], "total": 0},
        {"list": [], "total": 0},
    ),
    (
        lambda c: c.gift_query(GROUPS, sort_by="GiftDate", descending=True, take=10),
        "POST",
        "/api/Gift/Query/FullGift?skip=0&take=10",
        {"groups": GROUPS, "sortBy": "GiftDate", "descending": True},
        {"list": [{"id": 501, "amount": "25.10"}], "total": 1},
        {"list": [{"id": 501, "amount": "25.10"}], "total": 1},
    ),
    (
        lambda c: c.gift_query(GROUPS, full=False),
        "POST",
        "/api/Gift/Query?skip=0&take=1000",
        {"groups": GROUPS, "sortBy": None, "descending": False},
        {"list": [], "total": 0},
        {"list": [], "total": 0},
    ),
    (
        lambda c: c.recurring_gift_create(
            {"contactId": 88, "frequency": "Monthly", "amount": Decimal("10.00")}
        ),
        "POST",
        "/api/RecurringGift",
        {"contactId": 88, "frequency": "Monthly", "amount": "10.00"},
        {"id": 42},
        {"id": 42},
    ),
    (
        lambda c: c.recurring_gift_cancel(42, cancel_reason="Stripe subscription deleted", category_id=3),
        "PUT",
        "/api/RecurringGift/Cancel/42",
        {"cancelReason": "Stripe subscription deleted", "categoryId": 3},
        None,
        None,
    ),
    (
        lambda c: c.recurring_gift_cancel(42),
        "PUT",
        "/api/RecurringGift/Cancel/42",
        {"cancelReason": ""},
        None,
        None,
    ),
    (
        lambda c: c.gift_reversing_transaction(
            {"reversedGiftId": 501, "giftDate": "2026-11-21", "notes": "refund"}
        ),
        "POST",
        "/api/Gift/ReversingTransaction",
        {"reversedGiftId": 501, "giftDate": "2026-11-21", "notes": "refund"},
        {"id": 502},
        {"id": 502},
    ),
    (
        lambda c: c.webhook_create(
            {"payloadUrl": "https://hooks.test/v", "secret": "s" * 32, "giftCreate": True}
        ),
        "POST",
        "/api/Webhook",
        {"payloadUrl": "https://hooks.test/v", "secret": "s" * 32, "giftCreate": True},
        {"id": 12, "active": True},
        {"id": 12, "active": True},
    ),
    (lambda c: c.webhook_get(12), "GET", "/api/Webhook/12", None, {"id": 12}, {"id": 12}),
    (
        lambda c: c.webhook_update(12, {"payloadUrl": "https://hooks.test/v", "giftCreate": True}),
        "PUT",
        "/api/Webhook/12",
        {"payloadUrl": "https://hooks.test/v", "giftCreate": True},
        {"id": 12},
        {"id": 12},
    ),
    (
        lambda c: c.webhook_set_active(12, False),
        "PUT",
        "/api/Webhook/12/Active?active=false",
        None,
        None,
        None,
    ),
    (lambda c: c.webhook_set_active(12, True), "PUT", "/api/Webhook/12/Active?active=true", None, None, None),
    (lambda c: c.webhook_delete(12), "DELETE", "/api/Webhook/12", None, None, None),
]


@pytest.mark.parametrize(("call", "method", "path", "body", "reply", "expected"), CASES)
@responses.activate
def test_endpoint_request_and_result(client, calls, call, method, path, body, reply, expected):
    # given
    url = BASE + path.split("?")[0]
    responses.add(method, url, json=reply) if reply is not None else responses.add(method, url, body="")
    # when
    result = call(client)
    # then
    assert result == expected
    assert len(responses.calls) == 1
    sent = responses.calls[0].request
    assert sent.method == method
    assert sent.url == BASE + path
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    if body is None:
        assert sent.body is None
    else:
        assert sent.headers["Content-Type"] == "application/json"
        assert json.loads(sent.body, parse_float=str) == json.loads(json.dumps(body), parse_float=str)
    assert [(c.method, c.status_code, c.error_class) for c in calls] == [(method, 200, None)]


@responses.activate
def test_paths_are_appended_to_a_base_url_with_a_path(budget):
    # given: the in-process sandbox lives under a prefix
    base = "http://127.0.0.1:8000/sandbox/virtuous/"
    responses.get("http://127.0.0.1:8000/sandbox/virtuous/api/Organization/Current", json={"name": "Sandbox"})
    client = VirtuousClient(base_url=base, token=TOKEN, budget=budget, tenant_label="alpha")
    # when
    org = client.organization_current()
    # then
    assert org == {"name": "Sandbox"}


@responses.activate
def test_contact_find_returns_none_on_404(client):
    responses.get(
        f"{BASE}/api/Contact/Find", status=404, json={"error": {"code": "NOT_FOUND", "message": "No match"}}
    )
    assert client.contact_find(email="nobody@example.org") is None


def test_contact_find_needs_a_signal(client):
    with responses.RequestsMock() as mock, pytest.raises(ValueError, match="email or both"):
        client.contact_find(reference_source="Giftline")
    assert len(mock.calls) == 0


@pytest.mark.parametrize("take", [0, 1001])
def test_query_take_is_bounded(client, take):
    with responses.RequestsMock() as mock, pytest.raises(ValueError, match="take"):
        client.gift_query(GROUPS, take=take)
    assert len(mock.calls) == 0


@responses.activate
def test_request_carries_user_agent_and_request_id_and_logs_never_the_token(client, caplog, settings):
    responses.get(f"{BASE}/api/Organization/Current", json={}, headers={"X-Request-Id": "vr-77"})
    with caplog.at_level(logging.INFO):
        client.organization_current()
    sent = responses.calls[0].request
    assert sent.headers["User-Agent"] == settings.HTTP_USER_AGENT
    assert len(sent.headers["X-Request-Id"]) == 32
    assert "tenant=alpha" in caplog.text and "vr-77" in caplog.text
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(client)
