"""Health that can be believed, inbound review, and the journey of a donation.

Every concern flips its tenant from Healthy to Needs attention and back when the stuck thing is
dealt with; the outsider tenant's rows never count, never show and are never found."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from integrations.models import Connection, InboundEvent
from integrations.services import connection_create
from sync.inbound.drain import inbound_drain
from sync.inbound.review import inbound_event_dismiss, inbound_event_project_map, unmapped_project_keys
from sync.models import DeadLetter, OutboundItem, SyncCheckpoint, TenantQueue
from sync.ops import health
from sync.ops.journey import donation_journey, donation_search
from sync.templatetags.console import ago, duration, local
from tenants.models import AuditEvent, Tenant
from tenants.services import Actor, tenant_pause, tenant_resume
from tests.sync.conftest import enqueue_gifts

ACTOR = Actor(via="test")


def _donation(connection: Connection, n: int, *, campaign: str = "77", email: str = "ada@example.org"):
    body = {
        "event_name": "donation.created",
        "event_id": f"evt-{n}",
        "donation": {
            "id": 500 + n,
            "amount": "25.00",
            "currency": "USD",
            "status": "paid",
            "donation_date": "2026-11-20T15:00:00Z",
            "campaign": {"id": campaign, "name": "Winter appeal"},
            "donor": {"id": 900 + n, "first_name": "Ada", "last_name": "Lovelace", "email": email},
        },
    }
    return InboundEvent.objects.create(
        tenant=connection.tenant,
        connection=connection,
        provider="donorbox",
        event_type="donation.created",
        dedupe_key=f"evt-{n}",
        body=json.dumps(body).encode(),
        content_type="application/json",
        signature_valid=True,
    )


@pytest.fixture
def donorbox(tenant, other_tenant):
    """One Donorbox connection per tenant, with no default project: an unmapped campaign stops."""
    return (
        connection_create(tenant=tenant, provider="donorbox", name="Donorbox"),
        connection_create(tenant=other_tenant, provider="donorbox", name="Donorbox"),
    )


def _kinds(tenant: Tenant) -> list[str]:
    return [c.kind for c in health.tenant_concerns(tenants=[tenant])[tenant.pk]]


def _healthy(tenant: Tenant) -> bool:
    return _kinds(tenant) == []


# --- every count flips Healthy to Needs attention and back ---------------------------------------


def test_an_inbound_event_in_review_needs_attention_until_its_project_is_mapped(
    tenant, other_tenant, donorbox
):
    _donation(donorbox[1], 2)  # the outsider's stuck event never counts against the tenant
    event = _donation(donorbox[0], 1)
    inbound_drain(seconds=0)
    event.refresh_from_db()
    assert event.status == "needs_review", event.status_reason

    assert _kinds(tenant) == [health.INBOUND_REVIEW] and _kinds(other_tenant) == [health.INBOUND_REVIEW]
    assert unmapped_project_keys(event)[0] == "77"
    status = inbound_event_project_map(event=event, source_key="77", project_code="WINTER", actor=ACTOR)
    assert status == "processed" and _healthy(tenant)
    gift = OutboundItem.objects.get(tenant=tenant, operation="gift_transaction")
    assert gift.payload["designations"][0]["projectCode"] == "WINTER"
    assert AuditEvent.objects.filter(tenant=tenant, action="connection.project_code_mapped").count() == 1
    assert _kinds(other_tenant) == [health.INBOUND_REVIEW]


def test_dismissing_an_event_needs_a_reason_is_audited_and_clears_the_concern(tenant, donorbox):
    event = _donation(donorbox[0], 1)
    inbound_drain(seconds=0)
    event.refresh_from_db()
    with pytest.raises(ValueError, match="Say why"):
        inbound_event_dismiss(event=event, reason="  ", actor=ACTOR)
    assert inbound_event_dismiss(event=event, reason="test donation", actor=ACTOR)
    event.refresh_from_db()
    assert event.status == "dismissed" and event.status_reason == "Dismissed: test donation"
    row = AuditEvent.objects.get(action="inbound_event.dismissed")
    assert row.details["reason"] == "test donation" and row.details["previous_status"] == "needs_review"
    assert _healthy(tenant)
    assert not inbound_event_dismiss(event=event, reason="again", actor=ACTOR)  # only once


def test_failed_and_malformed_inbound_events_need_attention(tenant, donorbox):
    event = _donation(donorbox[0], 1)
    InboundEvent.objects.filter(pk=event.pk).update(status="malformed")
    assert _kinds(tenant) == [health.INBOUND_FAILED]
    InboundEvent.objects.filter(pk=event.pk).update(status="processed")
    assert _healthy(tenant)


def test_a_failing_connection_needs_attention_with_its_error_and_since_when(tenant, donorbox):
    then = timezone.now() - timedelta(hours=5)
    Connection.objects.filter(pk=donorbox[0].pk).update(last_error="needs an API key", last_success_at=then)
    (concern,) = health.tenant_concerns(tenants=[tenant])[tenant.pk]
    assert concern.kind == health.CONNECTION_FAILING and "needs an API key" in concern.text
    assert concern.since == then
    Connection.objects.filter(pk=donorbox[0].pk).update(paused_until=timezone.now() + timedelta(hours=1))
    assert _kinds(tenant) == [health.CONNECTION_PAUSED]
    Connection.objects.filter(pk=donorbox[0].pk).update(last_error="", paused_until=None)
    assert _healthy(tenant)


def test_items_in_review_and_unconfirmed_past_their_time_need_attention(tenant, other_tenant, settings):
    (item,) = enqueue_gifts(tenant, 1)
    enqueue_gifts(other_tenant, 1)
    TenantQueue.objects.update_or_create(tenant=tenant, defaults={"last_success_at": timezone.now()})
    OutboundItem.objects.filter(pk=item.pk).update(
        state="submitted",
        submitted_at=timezone.now() - timedelta(hours=settings.OUTBOUND_CONFIRM_LOOKUP_HOURS - 1),
    )
    assert _healthy(tenant)  # Virtuous's nightly batch has not run yet: not stuck
    OutboundItem.objects.filter(pk=item.pk).update(
        submitted_at=timezone.now() - timedelta(hours=settings.OUTBOUND_CONFIRM_LOOKUP_HOURS + 1)
    )
    assert _kinds(tenant) == [health.UNCONFIRMED]
    OutboundItem.objects.filter(pk=item.pk).update(state="needs_review")
    assert _kinds(tenant) == [health.ITEMS_NEED_REVIEW]
    OutboundItem.objects.filter(pk=item.pk).update(state="confirmed", confirmed_at=timezone.now())
    assert _healthy(tenant)


def test_open_dead_letters_and_pauses_need_attention(tenant, fake_virtuous):
    from integrations.virtuous.errors import ErrorClass, VirtuousError
    from sync.outbound.drain import outbound_drain

    enqueue_gifts(tenant, 1)
    fake_virtuous.outcomes.append(VirtuousError(ErrorClass.PERMANENT, "bad", status_code=400))
    outbound_drain(tenant=tenant, client_factory=fake_virtuous.factory)
    assert _kinds(tenant) == [health.DEAD_LETTERS]
    DeadLetter.objects.filter(tenant=tenant).update(resolution="discarded")
    assert _healthy(tenant)
    tenant_pause(tenant=tenant, reason="card declined")
    tenant.refresh_from_db()
    assert _kinds(tenant) == [health.PAUSED]
    tenant_resume(tenant=tenant)
    tenant.refresh_from_db()
    assert _healthy(tenant)


def test_a_checkpoint_not_read_for_three_intervals_is_stale(tenant):
    connection = connection_create(tenant=tenant, provider="donorbox", capture_mode="polling")
    checkpoint = SyncCheckpoint.objects.create(
        tenant=tenant,
        scope=connection.credential_scope,
        resource_type="donation",
        direction="outbound",
        last_run_at=timezone.now() - timedelta(minutes=connection.poll_interval_minutes * 2),
    )
    assert _healthy(tenant)
    SyncCheckpoint.objects.filter(pk=checkpoint.pk).update(
        last_run_at=timezone.now() - timedelta(minutes=connection.poll_interval_minutes * 4)
    )
    assert _kinds(tenant) == [health.STALE_CHECKPOINT]
    SyncCheckpoint.objects.filter(pk=checkpoint.pk).update(last_run_at=timezone.now())
    assert _healthy(tenant)


def test_an_item_waiting_on_its_contact_past_the_confirmation_window_needs_attention(tenant, other_tenant):
    def waiting_gift(owner: Tenant, key: str, hours: int) -> OutboundItem:
        return OutboundItem.objects.create(
            tenant=owner,
            operation="gift_transaction",
            external_source="Donorbox",
            external_id=key,
            idempotency_key=f"gift:{key}",
            payload={"transactionId": key},
            state=OutboundItem.State.WAITING,
            waiting_since=timezone.now() - timedelta(hours=hours),
        )

    waiting_gift(other_tenant, "outsider-old", 30)  # never counts against the tenant
    fresh = waiting_gift(tenant, "d-1", 1)  # waiting behind its contact as a matter of course
    assert _healthy(tenant)
    OutboundItem.objects.filter(pk=fresh.pk).update(waiting_since=timezone.now() - timedelta(hours=25))
    assert _kinds(tenant) == [health.WAITING]
    OutboundItem.objects.filter(pk=fresh.pk).update(state=OutboundItem.State.PENDING)
    assert _healthy(tenant)


# --- pages ----------------------------------------------------------------------------------------


def _cs(name: str, *tenants: Tenant):
    user = get_user_model().objects.create_user(name, f"{name}@example.org", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Customer success"))
    for t in tenants:
        t.assigned_staff.add(user)
    return user


def test_staff_land_on_tenant_health_and_see_each_concern_linked(client, tenant, other_tenant, donorbox):
    _donation(donorbox[0], 1)
    _donation(donorbox[1], 2)
    inbound_drain(seconds=0)
    client.force_login(_cs("cs-alpha", tenant))
    assert client.get("/admin/").url == reverse("admin:sync_tenanthealth_changelist")
    assert client.get("/admin/?sections=1").status_code == 200
    html = client.get(reverse("admin:sync_tenanthealth_changelist")).content.decode()
    assert "Needs attention" in html and "1 inbound event needs review" in html
    assert f"tenant={tenant.public_id}&amp;status__exact=needs_review" in html
    assert "Bravo" not in html
    dashboard = client.get(
        reverse("admin:sync_tenanthealth_change", args=[tenant.public_id])
    ).content.decode()
    assert "1 inbound event needs review" in dashboard and "Last webhook" in dashboard
    listing = client.get(reverse("admin:integrations_inboundevent_changelist")).content.decode()
    assert "No Virtuous project code is mapped for 77" in listing  # the reason column


def test_review_page_maps_and_reruns_and_refuses_another_tenants_event(
    client, tenant, other_tenant, donorbox
):
    mine, theirs = _donation(donorbox[0], 1), _donation(donorbox[1], 2)
    inbound_drain(seconds=0)
    client.force_login(_cs("cs-alpha", tenant))
    assert client.get(reverse("admin:integrations_inboundevent_review", args=[theirs.pk])).status_code == 404
    url = reverse("admin:integrations_inboundevent_review", args=[mine.pk])
    page = client.get(url).content.decode()
    assert 'value="77"' in page and "•••" in page  # the key offered; donor data masked for CS
    response = client.post(url, {"step": "map", "source_key": "77", "project_code": "WINTER"}, follow=True)
    assert "it is processed" in response.content.decode()
    mine.refresh_from_db()
    assert mine.status == "processed"
    assert AuditEvent.objects.filter(action="inbound_event.replayed", actor__username="cs-alpha").count() == 1


def test_the_dismiss_action_asks_for_a_reason(client, superuser, tenant, donorbox):
    event = _donation(donorbox[0], 1)
    inbound_drain(seconds=0)
    client.force_login(superuser)
    changelist = reverse("admin:integrations_inboundevent_changelist")
    data = {"action": "dismiss_events", "_selected_action": [event.pk]}
    assert "Dismiss events" in client.post(changelist, data).content.decode()
    client.post(changelist, {**data, "post": "yes", "reason": "duplicate test gift"})
    event.refresh_from_db()
    assert event.status == "dismissed"


# --- the journey of a donation --------------------------------------------------------------------


def _mapped(tenant, donorbox, n: int, email: str):
    Connection.objects.filter(pk=donorbox.pk).update(default_project_code="GEN")
    event = _donation(donorbox, n, email=email)
    inbound_drain(seconds=0)
    event.refresh_from_db()
    assert event.status == "processed"
    return event


def test_search_finds_a_gift_by_email_amount_date_and_ids_only_in_the_users_tenants(
    tenant, other_tenant, donorbox
):
    _mapped(tenant, donorbox[0], 1, "ada@example.org")
    _mapped(other_tenant, donorbox[1], 2, "ada@example.org")  # the same donor gave to the outsider
    mine = Tenant.objects.filter(pk=tenant.pk)
    gift = OutboundItem.objects.get(tenant=tenant, operation="gift_transaction")
    OutboundItem.objects.filter(pk=gift.pk).update(virtuous_id="7001")
    for query in (
        "ada@example.org",
        "ADA@example.org",
        "25.00",
        "$25",
        "2026-11-20",
        "501",
        "7001",
        "Ada Lovelace",
    ):
        assert [g.pk for g in donation_search(tenants=mine, query=query)] == [gift.pk], query
    assert donation_search(tenants=mine, query="grace@example.org") == []
    assert len(donation_search(tenants=Tenant.objects.all(), query="ada@example.org")) == 2


def test_the_journey_tells_the_story_in_order(tenant, donorbox, fake_virtuous):
    from sync.outbound.drain import outbound_drain

    event = _mapped(tenant, donorbox[0], 1, "ada@example.org")
    outbound_drain(tenant=tenant, client_factory=fake_virtuous.factory)
    gift = OutboundItem.objects.get(tenant=tenant, operation="gift_transaction")
    journey = donation_journey(anchor=gift)
    assert journey.events == [event] and {i.operation for i in journey.items} == {
        "gift_transaction",
        "contact_transaction",
    }
    kinds = [s.kind for s in journey.steps]
    assert kinds[:2] == ["received", "mapped"] and "attempt" in kinds and "submitted" in kinds
    assert donation_journey(anchor=event).gift == gift  # the event leads to the same donation


def test_journey_pages_are_tenant_scoped_and_mask_donor_data(client, tenant, other_tenant, donorbox):
    _mapped(tenant, donorbox[0], 1, "ada@example.org")
    _mapped(other_tenant, donorbox[1], 2, "ada@example.org")
    client.force_login(_cs("cs-alpha", tenant))
    search = client.get(reverse("admin:sync_donation_search"), {"q": "ada@example.org"}).content.decode()
    assert "1 gift found" in search
    start = search.index('id="donation-results"')
    results = search[start : search.index("</table>", start)]
    assert "Alpha" in results and "Bravo" not in results and "ada@example.org" not in results
    theirs = OutboundItem.objects.get(tenant=other_tenant, operation="gift_transaction")
    assert client.get(reverse("admin:sync_donation_journey", args=[theirs.public_id])).status_code == 404
    letter_free = client.get(
        reverse("admin:sync_donation_journey_for", args=["outbounditem", theirs.pk])
    ).status_code
    assert letter_free == 404
    gift = OutboundItem.objects.get(tenant=tenant, operation="gift_transaction")
    page = client.get(reverse("admin:sync_donation_journey", args=[gift.public_id])).content.decode()
    assert "Webhook received from Donorbox" in page and "Lovelace" not in page and "•••" in page


def test_time_and_duration_filters_read_like_a_person():
    now = timezone.now()
    assert duration(45) == "45 s" and duration(timedelta(minutes=4)) == "4 min"
    assert (
        duration(timedelta(hours=3, minutes=20)) == "3 h 20 min"
        and duration(timedelta(days=2, hours=4)) == "2 days 4 h"
    )
    assert (
        ago(now - timedelta(minutes=4), now) == "4 min ago" and ago(now + timedelta(hours=3), now) == "in 3 h"
    )
    moment = datetime(2026, 11, 27, 20, 5, tzinfo=UTC)
    assert local(moment, "America/Chicago") == "27 Nov 2026, 14:05 CST"
