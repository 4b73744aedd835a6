from datetime import timedelta

from django.utils import timezone

from sync.models import OutboundItem, SyncRecord
from sync.outbound.confirm import outbound_confirm, outbound_reconcile_submitted
from sync.outbound.drain import outbound_drain
from tests.sync.conftest import enqueue_gifts


def _submitted(tenant, fake, count=1):
    items = enqueue_gifts(tenant, count)
    outbound_drain(tenant=tenant, client_factory=fake.factory)
    return items


def test_webhook_confirmation_sets_confirmed_and_stores_the_virtuous_id(tenant, fake_virtuous):
    _submitted(tenant, fake_virtuous)
    assert (
        outbound_confirm(
            tenant=tenant, kind="gift", external_source="Stripe", external_id="pi_1", virtuous_id="8812"
        )
        == 1
    )
    item = OutboundItem.objects.get()
    record = SyncRecord.objects.get()
    assert (item.state, item.virtuous_id) == ("confirmed", "8812")
    assert (record.status, record.sync_state, record.virtuous_id) == ("confirmed", "in_sync", "8812")
    # a duplicate delivery of the webhook is a no-op
    assert (
        outbound_confirm(
            tenant=tenant, kind="gift", external_source="Stripe", external_id="pi_1", virtuous_id="8812"
        )
        == 0
    )


def test_confirmation_never_crosses_tenants(tenant, other_tenant, fake_virtuous):
    _submitted(tenant, fake_virtuous)
    assert (
        outbound_confirm(
            tenant=other_tenant, kind="gift", external_source="Stripe", external_id="pi_1", virtuous_id="1"
        )
        == 0
    )
    assert OutboundItem.objects.get(tenant=tenant).state == "submitted"


def test_a_webhook_that_beats_our_state_update_still_confirms(tenant):
    (item,) = enqueue_gifts(tenant, 1)  # still pending: the crash-after-2xx case
    outbound_confirm(
        tenant=tenant, kind="gift", external_source="Stripe", external_id="pi_1", virtuous_id="5"
    )
    item.refresh_from_db()
    assert item.state == "confirmed"


def test_reconciliation_recovers_stuck_and_flags_long_missing(tenant, fake_virtuous):
    _submitted(tenant, fake_virtuous, count=3)
    now = timezone.now()
    OutboundItem.objects.filter(external_id="pi_1").update(submitted_at=now - timedelta(hours=30))  # found
    OutboundItem.objects.filter(external_id="pi_2").update(
        submitted_at=now - timedelta(hours=80)
    )  # missing, old
    OutboundItem.objects.filter(external_id="pi_3").update(
        submitted_at=now - timedelta(hours=30)
    )  # missing, young
    fake_virtuous.gifts_by_transaction[("Stripe", "pi_1")] = {"id": 42}
    counts = outbound_reconcile_submitted(tenant=tenant, client=fake_virtuous.factory(tenant))
    assert counts == {"checked": 3, "recovered": 1, "needs_review": 1, "waiting": 1}
    states = dict(OutboundItem.objects.values_list("external_id", "state"))
    assert states == {"pi_1": "confirmed", "pi_2": "needs_review", "pi_3": "submitted"}
    assert OutboundItem.objects.get(external_id="pi_1").note == "recovered by reconciliation"
    assert SyncRecord.objects.get(partner_id="pi_2").status == "needs_review"


def test_reconciliation_leaves_recent_submissions_alone(tenant, fake_virtuous):
    _submitted(tenant, fake_virtuous)
    calls_before = len(fake_virtuous.calls)
    assert outbound_reconcile_submitted(tenant=tenant, client=fake_virtuous.factory(tenant))["checked"] == 0
    assert len(fake_virtuous.calls) == calls_before


def test_a_401_met_by_the_reconciler_pauses_the_tenant_and_alerts(
    tenant, other_tenant, fake_virtuous, django_capture_on_commit_callbacks
):
    import responses
    from django.core import mail

    from sync.models import Alert

    tenant.alert_emails = "ops@alpha.example"
    tenant.save()
    _submitted(tenant, fake_virtuous)
    OutboundItem.objects.update(submitted_at=timezone.now() - timedelta(hours=30))
    with responses.RequestsMock() as mock, django_capture_on_commit_callbacks(execute=True):
        mock.get(
            "https://api.virtuoussoftware.com/api/Gift/Stripe/pi_1",
            status=401,
            body="Authorization has been denied for this request.",
        )
        outbound_reconcile_submitted(tenant=tenant)  # the real client, through the sync room's factory
    tenant.refresh_from_db()
    other_tenant.refresh_from_db()
    assert tenant.status == "paused" and "needs attention" in tenant.paused_reason
    assert other_tenant.status == "active"
    assert Alert.objects.filter(tenant=tenant, kind="tenant_paused").count() == 1
    assert [m.subject for m in mail.outbox] == ["[Giftline] Alpha Food Bank: syncing paused"]
    assert OutboundItem.objects.get().state == "submitted"  # nothing changed for the item
