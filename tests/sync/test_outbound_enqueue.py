from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from integrations.types import OutboundRequest
from sync.models import Origin, OutboundItem, SyncRecord, TenantQueue
from sync.outbound.enqueue import (
    outbound_enqueue,
    outbound_enqueue_many,
    payload_fingerprint,
)
from tests.sync.conftest import gift_request


def test_enqueue_stores_the_exact_payload_with_decimal_amounts_as_strings(tenant):
    item, created = outbound_enqueue(
        tenant=tenant, request=gift_request(1, amount="12.34"), origin=Origin.WEBHOOK
    )
    item.refresh_from_db()
    assert created is True
    assert item.state == OutboundItem.State.PENDING
    assert item.payload["amount"] == "12.34"
    assert item.idempotency_key == "gift_transaction:Stripe:pi_1"
    assert (item.external_source, item.external_id) == ("Stripe", "pi_1")


def test_same_key_twice_is_a_no_op(tenant):
    first, created1 = outbound_enqueue(tenant=tenant, request=gift_request(1), origin=Origin.WEBHOOK)
    second, created2 = outbound_enqueue(
        tenant=tenant, request=gift_request(1, amount="99.00"), origin=Origin.POLL
    )
    assert (created1, created2) == (True, False)
    assert first.pk == second.pk
    assert OutboundItem.objects.count() == 1
    assert OutboundItem.objects.get().payload["amount"] == "25.00"  # the first capture wins, unchanged


def test_same_key_for_two_tenants_is_two_items(tenant, other_tenant):
    outbound_enqueue(tenant=tenant, request=gift_request(1), origin=Origin.WEBHOOK)
    outbound_enqueue(tenant=other_tenant, request=gift_request(1), origin=Origin.WEBHOOK)
    assert OutboundItem.objects.filter(tenant=tenant).count() == 1
    assert OutboundItem.objects.filter(tenant=other_tenant).count() == 1


def test_bulk_origin_gets_bulk_priority_and_live_does_not(tenant):
    live, _ = outbound_enqueue(tenant=tenant, request=gift_request(1), origin=Origin.WEBHOOK)
    bulk, _ = outbound_enqueue(tenant=tenant, request=gift_request(2), origin=Origin.BULK)
    assert live.priority < bulk.priority


def test_enqueue_records_sync_state_and_fingerprint(tenant):
    request = gift_request(1)
    outbound_enqueue(tenant=tenant, request=request, origin=Origin.WEBHOOK)
    record = SyncRecord.objects.get(tenant=tenant)
    assert (record.resource_type, record.partner_source, record.partner_id) == ("gift", "Stripe", "pi_1")
    assert record.status == SyncRecord.Status.PENDING
    assert record.sync_state == SyncRecord.SyncState.PARTNER_PENDING
    assert record.fingerprint == payload_fingerprint(request.payload)


def test_enqueue_wakes_the_tenant_queue(tenant):
    assert not TenantQueue.objects.filter(tenant=tenant).exists()
    item, _ = outbound_enqueue(tenant=tenant, request=gift_request(1), origin=Origin.WEBHOOK)
    assert TenantQueue.objects.get(tenant=tenant).wake_at == item.next_attempt_at


@pytest.mark.parametrize(
    "request_kwargs,message",
    [
        ({"operation": "delete_everything"}, "Unknown operation"),
        ({"external_id": ""}, "external source and id"),
        ({"payload": ["not", "a", "dict"]}, "JSON object"),
    ],
)
def test_invalid_requests_are_refused_and_nothing_is_stored(tenant, request_kwargs, message):
    base = {
        "operation": "gift_transaction",
        "external_source": "Stripe",
        "external_id": "pi_1",
        "payload": {},
    }
    with pytest.raises(ValueError, match=message):
        outbound_enqueue(
            tenant=tenant, request=OutboundRequest(**{**base, **request_kwargs}), origin=Origin.WEBHOOK
        )
    assert not OutboundItem.objects.exists()


def test_enqueue_many_skips_existing_and_duplicate_keys(tenant):
    outbound_enqueue(tenant=tenant, request=gift_request(1), origin=Origin.WEBHOOK)
    created = outbound_enqueue_many(
        tenant=tenant,
        requests=[gift_request(1), gift_request(2), gift_request(2), gift_request(3)],
        origin=Origin.BULK,
    )
    assert created == 2
    assert sorted(OutboundItem.objects.values_list("external_id", flat=True)) == ["pi_1", "pi_2", "pi_3"]
    assert OutboundItem.objects.get(external_id="pi_1").origin == Origin.WEBHOOK
    # a re-run enqueues nothing
    assert (
        outbound_enqueue_many(tenant=tenant, requests=[gift_request(2), gift_request(3)], origin=Origin.BULK)
        == 0
    )


def test_enqueue_many_marks_each_record_pending_and_keeps_what_it_does_not_own(tenant, other_tenant):
    """The bulk path's upsert (COPY on PostgreSQL, bulk_create on SQLite): a known record goes back
    to pending with the new fingerprint and keeps its Virtuous id; the outsider's is untouched."""
    earlier = timezone.now() - timedelta(days=1)
    for owner in (tenant, other_tenant):
        SyncRecord.objects.create(
            tenant=owner,
            resource_type=SyncRecord.ResourceType.GIFT,
            partner_source="Stripe",
            partner_id="pi_1",
            virtuous_id="G-77",
            status=SyncRecord.Status.CONFIRMED,
            sync_state=SyncRecord.SyncState.IN_SYNC,
            fingerprint="old",
        )
    SyncRecord.objects.filter(partner_id="pi_1").update(updated_at=earlier)
    assert (
        outbound_enqueue_many(tenant=tenant, requests=[gift_request(1), gift_request(2)], origin=Origin.BULK)
        == 2
    )
    known = SyncRecord.objects.get(tenant=tenant, partner_id="pi_1")
    assert (known.status, known.sync_state, known.virtuous_id) == ("pending", "partner_pending", "G-77")
    assert known.fingerprint == payload_fingerprint(gift_request(1).payload) and known.updated_at > earlier
    new = SyncRecord.objects.get(tenant=tenant, partner_id="pi_2")
    assert (new.status, new.sync_state, new.virtuous_id) == ("pending", "partner_pending", "")
    outsider = SyncRecord.objects.get(tenant=other_tenant)
    assert (outsider.status, outsider.fingerprint, outsider.updated_at) == ("confirmed", "old", earlier)


def test_fingerprint_is_stable_across_key_order_and_decimal_form():
    assert payload_fingerprint({"a": Decimal("1.50"), "b": 1}) == payload_fingerprint(
        {"b": 1, "a": Decimal("1.50")}
    )


def test_a_changed_contact_is_a_new_item_and_the_same_contact_is_not(tenant):
    from integrations.types import Operation

    def contact(email: str) -> OutboundRequest:
        return OutboundRequest(
            Operation.CONTACT_TRANSACTION, "Donorbox", "donor-1", {"referenceId": "donor-1", "email": email}
        )

    _, first = outbound_enqueue(tenant=tenant, request=contact("a@example.org"), origin=Origin.WEBHOOK)
    _, again = outbound_enqueue(tenant=tenant, request=contact("a@example.org"), origin=Origin.POLL)
    _, changed = outbound_enqueue(tenant=tenant, request=contact("b@example.org"), origin=Origin.WEBHOOK)
    assert (first, again, changed) == (True, False, True)
    assert SyncRecord.objects.filter(tenant=tenant, resource_type="contact").count() == 1
