"""The whole outbound loop against the live sandbox: submit, batch, signed webhooks, confirmation."""

from decimal import Decimal

import pytest

from integrations.common.parsing import to_decimal
from integrations.models import InboundEvent
from integrations.sandbox.models import SandboxContact, SandboxGift, SandboxWebhook
from integrations.sandbox.services import sandbox_batch_run
from integrations.types import Operation, OutboundRequest
from integrations.virtuous.client import VirtuousClient
from integrations.virtuous.services import virtuous_subscription_create
from sync.inbound.drain import inbound_drain
from sync.models import Origin, OutboundItem, SyncRecord
from sync.outbound.drain import outbound_drain
from sync.outbound.enqueue import outbound_enqueue
from tenants.services import tenant_create

pytestmark = pytest.mark.slow


def _contact(n: int) -> OutboundRequest:
    return OutboundRequest(
        Operation.CONTACT_TRANSACTION,
        "Giftline",
        f"donor-{n}",
        {
            "referenceSource": "Giftline",
            "referenceId": f"donor-{n}",
            "firstName": f"Donor{n}",
            "lastName": "Test",
            "email": f"d{n}@example.org",
        },
    )


def _gift(n: int, amount: str = "40.00") -> OutboundRequest:
    return OutboundRequest(
        Operation.GIFT_TRANSACTION,
        "Giftline",
        f"g-{n}",
        {
            "transactionSource": "Giftline",
            "transactionId": f"g-{n}",
            "contact": {"referenceId": f"donor-{n}", "email": f"d{n}@example.org"},
            "giftDate": "2026-11-20",
            "giftType": "Credit",
            "amount": Decimal(amount),
            "designations": [{"projectCode": "GEN", "amountDesignated": Decimal(amount)}],
        },
    )


@pytest.mark.parametrize("style,encoding", [("observed", "hex"), ("envelope", "base64")])
def test_gifts_flow_into_the_sandbox_and_are_confirmed_by_its_signed_webhooks(
    sandboxed, live_server, style, encoding
):
    tenant = tenant_create(slug="loop", name="Loop Shelter")
    org = sandboxed(tenant)
    org.webhook_payload_style = style
    org.webhook_signature_encoding = encoding
    org.save()
    virtuous_subscription_create(tenant=tenant, base_url=live_server.url)
    for n in range(1, 4):
        outbound_enqueue(tenant=tenant, request=_contact(n), origin=Origin.WEBHOOK)
        outbound_enqueue(tenant=tenant, request=_gift(n), origin=Origin.WEBHOOK)

    # when: the submitter drains, Virtuous holds the transactions (no ids yet)
    result = outbound_drain(tenant=tenant)
    assert result.submitted == 6 and result.calls == 2  # one Contact/Batch, one v2/Gift/Transactions
    assert set(OutboundItem.objects.values_list("state", flat=True)) == {"submitted"}
    assert not SandboxGift.objects.filter(organization=org).exists()

    # and the nightly batch runs: records appear, signed webhooks arrive and verify
    sandbox_batch_run(organization=org)
    assert SandboxGift.objects.filter(organization=org).count() == 3
    assert SandboxContact.objects.filter(organization=org).count() == 3
    events = InboundEvent.objects.filter(provider="virtuous")
    assert events.count() == 6 and set(events.values_list("signature_valid", flat=True)) == {True}
    assert set(events.values_list("status", flat=True)) == {"pending"}

    # then: processing them confirms every item and stores the Virtuous ids
    inbound_drain(seconds=0)
    assert set(OutboundItem.objects.values_list("state", flat=True)) == {"confirmed"}
    gift_item = OutboundItem.objects.get(external_id="g-2")
    assert gift_item.virtuous_id == str(SandboxGift.objects.get(organization=org, transaction_id="g-2").pk)
    assert set(SyncRecord.objects.values_list("sync_state", flat=True)) == {"in_sync"}
    org.counters.refresh_from_db()
    assert org.counters.duplicate_submissions == 0


def test_the_client_against_the_live_sandbox(sandboxed):
    tenant = tenant_create(slug="client", name="Client Check")
    org = sandboxed(tenant)
    client = VirtuousClient.for_tenant(tenant)
    assert client.organization_current()["organizationName"].endswith("(Sandbox)")
    client.contact_transaction(_contact(7).payload)
    client.gift_transaction(_gift(7, "12.50").payload)
    from integrations.virtuous.errors import ErrorClass, VirtuousError

    with pytest.raises(VirtuousError) as held:
        client.gift_get_by_transaction("Giftline", "g-7")
    assert held.value.error_class == ErrorClass.NOT_FOUND  # 404 while held, as in production
    sandbox_batch_run(organization=org)
    gift = client.gift_get_by_transaction("Giftline", "g-7")
    assert to_decimal(gift["amount"]) == Decimal("12.50")  # Virtuous may send amounts as strings
    found = client.contact_find(reference_source="Giftline", reference_id="donor-7")
    assert found and found["id"] == gift["contactId"]
    pages = list(client.iter_modified_since("gift", since=gift_modified_floor(), page_size=1))
    assert [g["transactionId"] for g in pages] == ["g-7"]


def gift_modified_floor():
    from datetime import UTC, datetime

    return datetime(2000, 1, 1, tzinfo=UTC)


def test_a_bad_signature_from_virtuous_is_refused_and_confirms_nothing(sandboxed, live_server):
    tenant = tenant_create(slug="badsig", name="Bad Sig")
    org = sandboxed(tenant)
    virtuous_subscription_create(tenant=tenant, base_url=live_server.url)
    hook = SandboxWebhook.objects.get(organization=org)
    hook.secret = "not-the-secret-we-stored"
    hook.save()
    outbound_enqueue(tenant=tenant, request=_contact(1), origin=Origin.WEBHOOK)
    outbound_enqueue(tenant=tenant, request=_gift(1), origin=Origin.WEBHOOK)
    outbound_drain(tenant=tenant)
    sandbox_batch_run(organization=org)
    events = InboundEvent.objects.filter(provider="virtuous")
    assert events.count() == 2 and set(events.values_list("status", flat=True)) == {"rejected"}
    inbound_drain(seconds=0)
    assert set(OutboundItem.objects.values_list("state", flat=True)) == {"submitted"}
