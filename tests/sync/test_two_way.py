"""The two-way handler: sync-state transitions, conflict policies, stale skips, merges, rollout modes,
partner captures (echoes and cooldown) and the partner drain."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import responses
from django.utils import timezone

from integrations.mailchimp.mapping import subscriber_hash
from integrations.models import InboundEvent
from integrations.services import connection_create, inbound_event_record_polled
from integrations.types import Operation, OutboundRequest, PolledRecord
from integrations.virtuous.inbound import VirtuousChange
from sync.inbound.apply import virtuous_change_apply
from sync.inbound.drain import inbound_drain
from sync.models import (
    DeadLetter,
    Origin,
    OutboundItem,
    SyncRecord,
    VirtuousContactMirror,
    VirtuousGiftMirror,
)
from sync.outbound.claim import outbound_claim
from sync.outbound.enqueue import outbound_enqueue
from sync.two_way import state as two_way
from sync.two_way.partner_drain import partner_drain, sync_records_cooldown_expire
from tenants.models import Tenant
from tenants.services import credential_set

EMAIL = "ada@example.org"
HASH = subscriber_hash(EMAIL)
LIST = "abc123"
MEMBER_URL = f"https://us19.api.mailchimp.com/3.0/lists/{LIST}/members/{HASH}"
TARGET = two_way.target_for("mailchimp")


def _mode(tenant, mode, policy=Tenant.ConflictPolicy.VIRTUOUS_CANONICAL):
    Tenant.objects.filter(pk=tenant.pk).update(inbound_mode=mode, conflict_policy=policy)
    tenant.refresh_from_db()


def vcontact(first="Ada", last="Lovelace", *, modified="2026-05-01T10:00:00Z", vid=100, tags=(), merged=None):
    return {
        "id": vid,
        "name": f"{first} {last}",
        "contactIndividuals": [
            {
                "firstName": first,
                "lastName": last,
                "isPrimary": True,
                "contactMethods": [{"type": "Home Email", "value": EMAIL, "isPrimary": True}],
            }
        ],
        "contactReferences": [{"source": "Mailchimp", "id": HASH}],
        "tags": list(tags),
        "mergedIntoContactId": merged,
        "modifiedDateTimeUtc": modified,
    }


def partner_payload(first="Ada", last="Lovelace", tags="Mailchimp: Newsletter"):
    return {
        "referenceSource": "Mailchimp",
        "referenceId": HASH,
        "contactType": "Household",
        "firstName": first,
        "lastName": last,
        "emailType": "Home Email",
        "email": EMAIL,
        "tags": tags,
    }


def apply(tenant, record, event="contactUpdate"):
    return virtuous_change_apply(tenant=tenant, change=VirtuousChange(event, "contact", record))


@pytest.fixture
def linked(tenant, other_tenant):
    """A Mailchimp member linked to Virtuous contact 100, in sync; the outsider has its own twin."""
    result = {}
    for t in (tenant, other_tenant):
        connection = connection_create(
            tenant=t,
            provider="mailchimp",
            capture_mode="hybrid",
            settings={"audiences": {LIST: "Newsletter"}},
        )
        credential_set(
            tenant=t,
            platform="mailchimp",
            purpose="api_token",
            secret="k-us19",
            scope=str(connection.public_id),
        )
        view = two_way.virtuous_view(vcontact(), TARGET)
        snapshot = {**two_way.partner_view(partner_payload(), TARGET), "by": "partner"}
        result[t.slug] = SyncRecord.objects.create(
            tenant=t,
            resource_type="contact",
            partner_source="Mailchimp",
            partner_id=HASH,
            virtuous_id="100",
            status="confirmed",
            sync_state="in_sync",
            virtuous_fingerprint=two_way.fingerprint(view),
            virtuous_modified_at=datetime(2026, 4, 1, tzinfo=UTC),
            partner_snapshot=snapshot,
        )
        result[f"{t.slug}-connection"] = connection
    _mode(tenant, Tenant.InboundMode.FULL)
    return result


def _partner_items(tenant):
    return OutboundItem.objects.filter(tenant=tenant, operation=Operation.PARTNER_CONTACT_UPDATE)


# --- state transitions ------------------------------------------------------------------------


def test_a_change_in_virtuous_puts_the_record_in_virtuous_pending_and_queues_one_partner_write(
    tenant, other_tenant, linked
):
    # when the donor is renamed in Virtuous
    result = apply(tenant, vcontact("Adele"))
    # then the record cools down and one partner write carries only the changed field
    record = SyncRecord.objects.get(pk=linked["alpha"].pk)
    assert record.sync_state == "virtuous_pending"
    assert record.cooldown_until > timezone.now() + timedelta(seconds=tenant.inbound_cooldown_seconds - 5)
    item = _partner_items(tenant).get()
    assert (item.direction, item.payload["changes"]) == ("inbound", {"firstName": "Adele"})
    assert result["origin"] == "elsewhere" and any("partner write queued" in a for a in result["actions"])
    # and the same event again (a retried webhook, or a poll of the same version) changes nothing
    again = apply(tenant, vcontact("Adele"))
    assert _partner_items(tenant).count() == 1 and "echo" in " ".join(again["actions"])
    # and the outsider's twin is untouched
    assert SyncRecord.objects.get(pk=linked["bravo"].pk).sync_state == "in_sync"
    assert not _partner_items(other_tenant).exists()


def test_a_partner_write_is_never_claimed_by_the_virtuous_submitter(tenant, linked):
    apply(tenant, vcontact("Adele"))
    assert outbound_claim(tenant=tenant, worker="w", limit=10) == []
    assert len(outbound_claim(tenant=tenant, worker="w", limit=10, direction="inbound")) == 1


def test_the_cooldown_ends_in_sync(tenant, linked):
    apply(tenant, vcontact("Adele"))
    SyncRecord.objects.filter(pk=linked["alpha"].pk).update(
        cooldown_until=timezone.now() - timedelta(seconds=1)
    )
    assert sync_records_cooldown_expire() == 1
    assert SyncRecord.objects.get(pk=linked["alpha"].pk).sync_state == "in_sync"


def test_a_contact_event_confirming_our_write_is_ours_and_writes_nothing_back(tenant, linked):
    # given the partner's change is on its way to Virtuous
    outbound_enqueue(
        tenant=tenant,
        request=OutboundRequest(Operation.CONTACT_TRANSACTION, "Mailchimp", HASH, partner_payload("Adele")),
        origin=Origin.WEBHOOK,
    )
    OutboundItem.objects.filter(tenant=tenant).update(state="submitted")
    assert SyncRecord.objects.get(pk=linked["alpha"].pk).sync_state == "partner_pending"
    # when Virtuous reports the contact with the new name (our write landing)
    result = apply(tenant, vcontact("Adele"))
    # then the write is confirmed, the record is in sync, and nothing goes back to the partner
    assert (result["origin"], result["confirmed"]) == ("ours", 1)
    record = SyncRecord.objects.get(pk=linked["alpha"].pk)
    assert record.sync_state == "in_sync"
    assert record.virtuous_fingerprint == two_way.fingerprint(
        two_way.virtuous_view(vcontact("Adele"), TARGET)
    )
    assert not _partner_items(tenant).exists()


def test_a_record_in_conflict_waits_for_a_person(tenant, linked):
    SyncRecord.objects.filter(pk=linked["alpha"].pk).update(sync_state="conflict")
    apply(tenant, vcontact("Adele"))
    assert SyncRecord.objects.get(pk=linked["alpha"].pk).sync_state == "conflict"
    assert not _partner_items(tenant).exists()


def test_virtuous_already_matching_the_partner_is_a_baseline_not_a_change(tenant, linked):
    SyncRecord.objects.filter(pk=linked["alpha"].pk).update(virtuous_fingerprint="")
    result = apply(tenant, vcontact())
    assert "baseline" in " ".join(result["actions"])
    assert SyncRecord.objects.get(pk=linked["alpha"].pk).sync_state == "in_sync"
    assert not _partner_items(tenant).exists()


# --- stale events -----------------------------------------------------------------------------


def test_a_stale_event_is_skipped(tenant, linked):
    apply(tenant, vcontact("Adele", modified="2026-05-02T10:00:00Z"))
    # when an older version arrives late (a retried webhook)
    result = apply(tenant, vcontact("Ada", modified="2026-05-01T09:00:00Z"))
    # then neither the mirror nor the partner goes back to it
    assert any(a.startswith("stale") for a in result["actions"])
    assert VirtuousContactMirror.objects.get(tenant=tenant).name == "Adele Lovelace"
    assert _partner_items(tenant).count() == 1


# --- conflict policies ------------------------------------------------------------------------


def _partner_change_pending(tenant, state="pending", minutes_ago=5):
    item, _ = outbound_enqueue(
        tenant=tenant,
        request=OutboundRequest(
            Operation.CONTACT_TRANSACTION,
            "Mailchimp",
            HASH,
            partner_payload("Ada", "Byron"),
            partner_modified_at=timezone.now() - timedelta(minutes=minutes_ago),
        ),
        origin=Origin.WEBHOOK,
    )
    OutboundItem.objects.filter(pk=item.pk).update(state=state)
    return item


def test_virtuous_canonical_supersedes_the_pending_partner_change(tenant, linked):
    item = _partner_change_pending(tenant)
    apply(tenant, vcontact("Adele"))
    item.refresh_from_db()
    assert item.state == "discarded" and "superseded" in item.note
    assert SyncRecord.objects.get(pk=linked["alpha"].pk).sync_state == "virtuous_pending"
    assert _partner_items(tenant).get().payload["changes"] == {"firstName": "Adele"}


def test_virtuous_canonical_with_the_partner_change_already_sent_is_a_conflict(tenant, linked):
    _partner_change_pending(tenant, state="submitted")
    apply(tenant, vcontact("Adele"))
    assert SyncRecord.objects.get(pk=linked["alpha"].pk).sync_state == "conflict"
    assert not _partner_items(tenant).exists()


@pytest.mark.parametrize(
    "virtuous_modified,expected_state,partner_writes",
    [
        (timezone.now().isoformat(), "virtuous_pending", 1),  # Virtuous is newer: it wins
        ((timezone.now() - timedelta(hours=1)).isoformat(), "partner_pending", 0),  # the partner is newer
        (None, "conflict", 0),  # cannot tell
    ],
)
def test_most_recent_wins(tenant, linked, virtuous_modified, expected_state, partner_writes):
    _mode(tenant, Tenant.InboundMode.FULL, Tenant.ConflictPolicy.MOST_RECENT)
    _partner_change_pending(tenant)
    apply(tenant, vcontact("Adele", modified=virtuous_modified))
    assert SyncRecord.objects.get(pk=linked["alpha"].pk).sync_state == expected_state
    assert _partner_items(tenant).count() == partner_writes


def test_field_ownership_writes_only_the_fields_virtuous_owns(tenant, linked):
    _mode(tenant, Tenant.InboundMode.FULL, Tenant.ConflictPolicy.FIELD_OWNERSHIP)
    item = _partner_change_pending(tenant)
    # when Virtuous renames the donor and adds a partner tag (tags are owned by the partner)
    apply(tenant, vcontact("Adele", tags=["MC: vip"]))
    # then only the name goes to the partner, and the partner's pending change is kept (held)
    assert _partner_items(tenant).get().payload["changes"] == {"firstName": "Adele"}
    item.refresh_from_db()
    assert item.state == "pending" and item.next_attempt_at > timezone.now()


# --- merges -----------------------------------------------------------------------------------


def test_a_merged_contact_repoints_every_stored_reference_to_the_survivor(tenant, other_tenant, linked):
    contact_item = _partner_change_pending(tenant, state="confirmed")
    OutboundItem.objects.filter(pk=contact_item.pk).update(virtuous_id="100")
    virtuous_change_apply(
        tenant=tenant,
        change=VirtuousChange(
            "giftCreate", "gift", {"id": 7, "contactId": 100, "amount": "5.00", "giftDate": "2026-01-02"}
        ),
    )
    # when Virtuous reports contact 100 merged into 200
    result = apply(tenant, vcontact(merged=200, modified="2026-05-03T00:00:00Z"))
    # then the sync record, our contact write and the mirrored gift all point at 200
    assert result["origin"] == "merged"
    assert SyncRecord.objects.get(pk=linked["alpha"].pk).virtuous_id == "200"
    assert OutboundItem.objects.get(pk=contact_item.pk).virtuous_id == "200"
    assert VirtuousGiftMirror.objects.get(tenant=tenant, virtuous_id=7).contact_id == 200
    assert VirtuousContactMirror.objects.get(tenant=tenant, virtuous_id=100).merged_into_id == 200
    assert not _partner_items(tenant).exists()
    assert SyncRecord.objects.get(pk=linked["bravo"].pk).virtuous_id == "100"


# --- rollout modes ----------------------------------------------------------------------------


def _snapshot(tenant):
    return (
        list(SyncRecord.objects.filter(tenant=tenant).values()),
        list(OutboundItem.objects.filter(tenant=tenant).values()),
        VirtuousContactMirror.objects.filter(tenant=tenant).count(),
        VirtuousGiftMirror.objects.filter(tenant=tenant).count(),
    )


@pytest.mark.parametrize("mode", [Tenant.InboundMode.OFF, Tenant.InboundMode.OBSERVE])
def test_off_and_observe_write_nothing_anywhere(tenant, linked, mode):
    _mode(tenant, mode)
    before = _snapshot(tenant)
    with responses.RequestsMock():  # any HTTP call would fail the test
        result = apply(tenant, vcontact("Adele"))
        virtuous_change_apply(
            tenant=tenant,
            change=VirtuousChange("giftCreate", "gift", {"id": 7, "contactId": 100, "amount": "5"}),
        )
        apply(tenant, vcontact(merged=200, modified="2026-05-03T00:00:00Z"))
        partner_drain(tenant=tenant)
    assert _snapshot(tenant) == before
    if mode == Tenant.InboundMode.OBSERVE:
        # observing records what it would have done
        assert result["mode"] == "observe"
        assert any(a.startswith("would: ") and "virtuous_pending" in a for a in result["actions"])
        assert any("partner write not made (observe mode)" in a for a in result["actions"])
    else:
        assert result == {"origin": "ours", "confirmed": 0}  # off: exactly the one-way behaviour


def test_from_elsewhere_keeps_state_and_mirror_but_writes_nothing_to_the_partner(tenant, linked):
    _mode(tenant, Tenant.InboundMode.FROM_ELSEWHERE)
    apply(tenant, vcontact("Adele"))
    assert SyncRecord.objects.get(pk=linked["alpha"].pk).sync_state == "virtuous_pending"
    assert VirtuousContactMirror.objects.get(tenant=tenant).name == "Adele Lovelace"
    assert not _partner_items(tenant).exists()


# --- partner captures: echoes and cooldown ------------------------------------------------------


def _capture(connection, payload_first, *, key, tags="Mailchimp: Newsletter"):
    merges = {"FNAME": payload_first, "LNAME": "Lovelace"}
    inbound_event_record_polled(
        connection=connection,
        record=PolledRecord(
            event_type="profile",
            dedupe_key=key,
            payload={"type": "profile", "data": {"email": EMAIL, "merges": merges, "list_id": LIST}},
            modified_at=timezone.now(),
            record_id=HASH,
        ),
    )
    inbound_drain(seconds=0)
    return InboundEvent.objects.get(connection=connection, dedupe_key=key)


def _write_to_mailchimp(tenant):
    with responses.RequestsMock() as mock:
        mock.add(responses.PATCH, MEMBER_URL, json={"id": HASH})
        result = partner_drain(tenant=tenant)
    return result, mock


def test_the_partner_echo_of_our_write_is_dropped_and_a_real_partner_change_is_held_for_the_cooldown(
    tenant, linked
):
    connection = linked["alpha-connection"]
    apply(tenant, vcontact("Adele"))
    result, _ = _write_to_mailchimp(tenant)
    assert result.written == 1
    assert SyncRecord.objects.get(pk=linked["alpha"].pk).partner_snapshot["firstName"] == "Adele"
    # when Mailchimp reports the member as we left it (our write echoing)
    echo = _capture(connection, "Adele", key="echo")
    # then nothing is queued for Virtuous
    assert echo.result["echoes"] == 1 and echo.result["enqueued"] == 0
    assert not OutboundItem.objects.filter(tenant=tenant, operation=Operation.CONTACT_TRANSACTION).exists()
    # and a real change on the partner during the cooldown is queued, held until the cooldown ends
    _capture(connection, "Ada-Marie", key="real")
    item = OutboundItem.objects.get(tenant=tenant, operation=Operation.CONTACT_TRANSACTION)
    cooldown_until = SyncRecord.objects.get(pk=linked["alpha"].pk).cooldown_until
    assert item.next_attempt_at == cooldown_until
    assert outbound_claim(tenant=tenant, worker="w", limit=10) == []


def test_partner_captures_are_untouched_while_inbound_is_off(tenant, linked):
    _mode(tenant, Tenant.InboundMode.OFF)
    SyncRecord.objects.filter(pk=linked["alpha"].pk).update(
        partner_snapshot={"by": "us", **linked["alpha"].partner_snapshot}
    )
    _capture(linked["alpha-connection"], "Ada", key="k")
    assert OutboundItem.objects.filter(tenant=tenant, operation=Operation.CONTACT_TRANSACTION).count() == 1


# --- the partner drain --------------------------------------------------------------------------


def test_the_partner_drain_writes_merge_fields_status_and_only_prefixed_tags(tenant, linked):
    apply(tenant, vcontact("Adele", tags=["MC: vip", "Major donor", "Mailchimp: Unsubscribed"]))
    with responses.RequestsMock() as mock:
        mock.add(responses.PATCH, MEMBER_URL, json={"id": HASH})
        mock.add(responses.POST, f"{MEMBER_URL}/tags", status=204)
        result = partner_drain(tenant=tenant)
        patch, tags = (json.loads(c.request.body) for c in mock.calls)
    assert result.written == 1
    assert patch == {"merge_fields": {"FNAME": "Adele"}, "status": "unsubscribed"}
    assert tags == {"tags": [{"name": "vip", "status": "active"}]}
    assert _partner_items(tenant).get().state == "confirmed"


@pytest.mark.parametrize("status,state,dead", [(429, "pending", 0), (503, "pending", 0), (404, "dead", 1)])
def test_partner_failures_retry_or_dead_letter(tenant, linked, status, state, dead):
    apply(tenant, vcontact("Adele"))
    with responses.RequestsMock() as mock:
        mock.add(responses.PATCH, MEMBER_URL, status=status)
        partner_drain(tenant=tenant)
    item = _partner_items(tenant).get()
    assert item.state == state and item.attempts == 1
    assert DeadLetter.objects.filter(tenant=tenant).count() == dead


def test_partner_writes_stop_when_the_rollout_is_rolled_back(tenant, linked):
    apply(tenant, vcontact("Adele"))
    _mode(tenant, Tenant.InboundMode.FROM_ELSEWHERE)
    with responses.RequestsMock():
        partner_drain(tenant=tenant)
    assert _partner_items(tenant).get().state == "dead"
