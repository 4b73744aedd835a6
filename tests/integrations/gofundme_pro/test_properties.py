"""Odd values anywhere in a GoFundMe Pro payload: a clear MappingError/MalformedPayload or a
complete outcome, never a crash, and never part of an event's writes in the queue."""

import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.common.mapping import MappingContext
from integrations.gofundme_pro import webhooks
from integrations.gofundme_pro.mapping import HANDLERS
from integrations.models import InboundEvent
from integrations.types import MalformedPayload, MappingError
from sync.inbound.drain import inbound_event_process
from sync.models import OutboundItem
from tests.integrations.conftest import fixture_json

ODD = st.one_of(
    st.none(),
    st.sampled_from(["", "0", "0.00", "-1", "-0.01", "1.005", "1e30", "NaN", "Infinity", "12,50", "€5"]),
    st.sampled_from(["XYZ1", "usd", "nope", "2026-13-45", "yesterday", "refunded", "success", "paused"]),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([10**12, 10**30, -(10**30), "1e30", "99999999999999999999999999999.99"]),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    st.booleans(),
    st.text(min_size=0, max_size=3000),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)
EVENTS = sorted(HANDLERS)
CTX = MappingContext(
    tenant_slug="alpha",
    time_zone="Europe/Berlin",
    source_name="GoFundMe Pro",
    project_code_map={"40122": "P2P"},
)


def _mutated(event_type: str, changes: dict) -> dict:
    envelope = fixture_json("gofundme_pro", f"{event_type}.json")
    envelope["data"].update(changes)
    return envelope


def _body(envelope: dict) -> bytes:
    return json.dumps(envelope, default=str).encode()


@given(
    event_type=st.sampled_from(EVENTS),
    changes=st.dictionaries(
        st.sampled_from(
            [
                "id",
                "status",
                "donation_gross_amount",
                "donation_amount",
                "fees_amount",
                "currency_code",
                "purchased_at",
                "updated_at",
                "refunded_at",
                "supporter_id",
                "campaign_id",
                "fundraising_page_id",
                "fundraising_team_id",
                "recurring_donation_plan_id",
                "is_anonymous",
                "payment_method",
                "frequency",
                "next_processing_date",
                "first_name",
                "billing_last_name",
                "supporter",
                "fundraising_page",
                "fundraising_team",
                "comment",
            ]
        ),
        ODD,
        max_size=4,
    ),
)
@settings(max_examples=300, deadline=None)
def test_mappers_never_crash(event_type, changes):
    try:
        payload = webhooks.load(_body(_mutated(event_type, changes)))
        outcome = HANDLERS[payload["type"]](CTX, payload)
    except (MalformedPayload, MappingError):
        return
    for request in outcome.requests:
        assert request.external_id and len(request.external_id) <= 80
        for key in ("amount", "amountDesignated"):
            if key in request.payload:
                assert isinstance(request.payload[key], Decimal) and request.payload[key] > 0


@pytest.mark.parametrize("event_type", ["transaction.created", "recurring_donation_plan.created"])
@given(amount=ODD)
@settings(max_examples=150, deadline=None)
def test_odd_amounts_are_a_mapping_error_or_an_exact_gift(event_type, amount):
    key = "donation_gross_amount" if event_type.startswith("transaction") else "donation_amount"
    payload = webhooks.load(_body(_mutated(event_type, {key: amount})))
    try:
        outcome = HANDLERS[event_type](CTX, payload)
    except MappingError:
        return
    written = [r.payload["amount"] for r in outcome.requests if "amount" in r.payload]
    assert written == [Decimal(str(amount))]
    assert Decimal("0") < written[0] <= Decimal("100000000") and written[0] == written[0].quantize(
        Decimal("0.01")
    )


@given(body=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
@settings(max_examples=200, deadline=None)
def test_load_rejects_garbage_clearly(body):
    try:
        payload = webhooks.load(body)
    except MalformedPayload:
        return
    assert isinstance(payload["data"], dict) and payload["type"]


@pytest.mark.django_db
@given(
    event_type=st.sampled_from(EVENTS),
    changes=st.dictionaries(
        st.sampled_from(["donation_gross_amount", "currency_code", "campaign_id", "supporter_id", "status"]),
        ODD,
        max_size=2,
    ),
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_an_event_enqueues_all_of_its_writes_or_none(tenant, make_connection, event_type, changes):
    OutboundItem.objects.all().delete()
    InboundEvent.objects.all().delete()
    connection = make_connection(tenant, "gofundme_pro", default_project_code="")
    connection.project_code_map = {"40122": "P2P"}
    connection.save()
    event = InboundEvent.objects.create(
        tenant=tenant,
        connection=connection,
        provider="gofundme_pro",
        capture=InboundEvent.Capture.POLL,
        event_type=event_type,
        dedupe_key=f"prop:{event_type}",
        body=_body(_mutated(event_type, changes)),
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
