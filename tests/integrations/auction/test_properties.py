"""Odd orders: the splitter gives a clear error or a whole outcome, never a crash or part of one."""

import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.auction import webhooks
from integrations.auction.mapping import HANDLERS
from integrations.common.mapping import MappingContext
from integrations.models import InboundEvent
from integrations.types import MalformedPayload, MappingError
from sync.inbound.drain import inbound_event_process
from sync.models import OutboundItem
from tests.integrations.conftest import fixture_json

ODD = st.one_of(
    st.none(),
    st.sampled_from(
        ["", "0", "0.00", "-1", "1.005", "1e30", "NaN", "12,50", "$5", "ticket", "raffle", "yes"]
    ),
    st.sampled_from(["donated_item", "sponsorship", "bake_sale", "organization", "2026-02-30", "XX"]),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.booleans(),
    st.text(max_size=2000),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["id", "name", "code", "type"]), st.text(max_size=80), max_size=3),
)
LINE_KEYS = ["line_no", "type", "amount", "fmv", "quantity", "item", "donor", "paid"]
ORDER_KEYS = ["id", "created_at", "currency", "payment_method", "event", "buyer"]
NAMES = {
    "order.completed": "order.completed",
    "order.refunded": "order.refunded",
    "order.voided": "order.voided",
}
CTX = MappingContext(
    tenant_slug="alpha",
    time_zone="Pacific/Auckland",
    source_name="Auction",
    project_code_map={"GALA26": "GALA"},
    settings={"premium_map": {"GALA-SEAT": 1, "LOT-12": 2, "sponsorship": 3}},
)

changes = st.tuples(
    st.sampled_from(sorted(HANDLERS)),
    st.dictionaries(st.sampled_from(ORDER_KEYS), ODD, max_size=2),
    st.lists(st.tuples(st.integers(0, 6), st.sampled_from(LINE_KEYS), ODD), max_size=4),
)


def _order(spec) -> bytes:
    name, order_changes, line_changes = spec
    data = fixture_json("auction", f"{name}.json")
    data["order"].update(order_changes)
    lines = data["order"]["lines"]
    for index, key, value in line_changes:
        if lines:
            lines[index % len(lines)][key] = value
    return json.dumps(data, default=str).encode()


@given(spec=changes)
@settings(max_examples=400, deadline=None)
def test_splitter_never_crashes_and_keeps_money_exact(spec):
    try:
        payload = webhooks.load(_order(spec))
        webhooks.dedupe_key(payload)
        outcome = HANDLERS[payload["event_type"]](CTX, payload)
    except (MalformedPayload, MappingError):
        return
    keys = [r.key for r in outcome.requests]
    assert len(keys) == len(set(keys))
    for request in outcome.requests:
        if request.operation == "gift_transaction":
            amount = request.payload["amount"]
            assert isinstance(amount, Decimal) and Decimal("0") < amount == amount.quantize(Decimal("0.01"))
            assert request.payload["designations"][0]["amountDesignated"] == amount
            assert request.external_id.startswith(str(payload["order"]["id"]).strip() + "-")
        if request.operation == "reversing_transaction":
            reversed_id = request.payload["reversedTransaction"]["transactionId"]
            assert f"gift_transaction:Auction:{reversed_id}" in keys


@pytest.mark.django_db
@given(spec=changes)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_an_order_enqueues_all_of_its_writes_or_none(tenant, make_connection, spec):
    OutboundItem.objects.all().delete()
    InboundEvent.objects.all().delete()
    connection = make_connection(tenant, "auction", default_project_code="", settings=dict(CTX.settings))
    connection.project_code_map = {"GALA26": "GALA"}
    connection.save()
    event = InboundEvent.objects.create(
        tenant=tenant,
        connection=connection,
        provider="auction",
        capture=InboundEvent.Capture.WEBHOOK,
        event_type=spec[0],
        dedupe_key="prop",
        body=_order(spec),
        content_type="application/json",
        status=InboundEvent.Status.PROCESSING,
    )
    status = inbound_event_process(event=event)
    event.refresh_from_db()
    queued = set(OutboundItem.objects.values_list("idempotency_key", flat=True))
    if status in ("malformed", "needs_review") and not event.result:
        assert queued == set()
    else:
        assert queued == set(event.result["keys"])
