"""The sync-loop test: Virtuous (the live sandbox) on one side, Mailchimp (a recording fake) on the other.

A change made on each side must produce exactly one write on the other side, and then the system
goes quiet: request counts are measured on both sides over several sandbox batch cycles. The fake
Mailchimp echoes every API write back as a profile webhook (the worst case: "via the API" ticked),
so the echo defence is exercised, not assumed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
import responses
from django.test import Client
from django.urls import reverse

from integrations.mailchimp.mapping import subscriber_hash
from integrations.models import InboundEvent
from integrations.sandbox.models import SandboxContact, SandboxGift, SandboxWebhook
from integrations.sandbox.services import sandbox_batch_run, sandbox_contact_edit, sandbox_gift_create
from integrations.services import connection_create
from integrations.virtuous.services import virtuous_subscription_create
from sync.inbound.drain import inbound_drain
from sync.models import (
    Attempt,
    Operation,
    OutboundItem,
    SyncRecord,
    VirtuousContactMirror,
    VirtuousGiftMirror,
)
from sync.ops import reconcile
from sync.outbound.drain import outbound_drain
from sync.two_way.partner_drain import partner_drain
from tenants.models import Tenant
from tenants.services import credential_set, tenant_create

pytestmark = pytest.mark.slow

EMAIL = "ada@example.org"
HASH = subscriber_hash(EMAIL)
LIST = "abc123"
SECRET = "mc-path-secret-for-the-loop-test-0001"
API = "https://us19.api.mailchimp.com/3.0"


class FakeMailchimp:
    """Records every write; answers like Mailchimp; echoes each write as a profile webhook."""

    def __init__(self, connection) -> None:
        self.connection = connection
        self.writes: list[tuple[str, dict]] = []
        self.member = {"FNAME": "Ada", "LNAME": "Lovelace"}
        self.echoes: list[dict] = []
        self.clock = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)  # fired_at has one-second resolution

    def patch(self, request):
        body = json.loads(request.body)
        self.writes.append(("PATCH", body))
        self.member.update(body.get("merge_fields") or {})
        self.echoes.append(self.profile_fields())
        return 200, {}, json.dumps({"id": HASH})

    def tags(self, request):
        self.writes.append(("TAGS", json.loads(request.body)))
        return 204, {}, ""

    def profile_fields(self) -> dict:
        return {
            "type": "profile",
            "fired_at": self.tick().strftime("%Y-%m-%d %H:%M:%S"),
            "data[email]": EMAIL,
            "data[list_id]": LIST,
            "data[merges][FNAME]": self.member["FNAME"],
            "data[merges][LNAME]": self.member["LNAME"],
        }

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def deliver(self, fields: dict) -> None:
        """A webhook delivery from Mailchimp to our receiver."""
        url = reverse("integrations:receive-with-secret", args=[self.connection.webhook_token, SECRET])
        response = Client().post(
            url, data=urlencode(fields).encode(), content_type="application/x-www-form-urlencoded"
        )
        assert response.status_code == 200

    def deliver_echoes(self) -> None:
        while self.echoes:
            self.deliver(self.echoes.pop(0))


def _cycle(tenant, org, mailchimp):
    """One round of every worker: submit, Virtuous's batch (webhooks fire), capture, write back."""
    outbound_drain(tenant=tenant)
    sandbox_batch_run(organization=org)
    inbound_drain(seconds=0)
    partner_drain(tenant=tenant)
    mailchimp.deliver_echoes()
    inbound_drain(seconds=0)


def _virtuous_writes(tenant) -> int:
    return Attempt.objects.filter(tenant=tenant).exclude(method="GET").count()


@pytest.fixture
def world(sandboxed, live_server):
    tenant = tenant_create(slug="loop2", name="Loop Two")
    outsider = tenant_create(slug="loop-outsider", name="Outsider")
    org = sandboxed(tenant)
    sandboxed(outsider)
    virtuous_subscription_create(tenant=tenant, base_url=live_server.url)
    Tenant.objects.filter(pk=tenant.pk).update(inbound_mode=Tenant.InboundMode.FULL)
    tenant.refresh_from_db()
    connection = connection_create(
        tenant=tenant,
        provider="mailchimp",
        capture_mode="hybrid",
        settings={"audiences": {LIST: "Newsletter"}},
    )
    scope = str(connection.public_id)
    credential_set(tenant=tenant, platform="mailchimp", purpose="webhook_secret", secret=SECRET, scope=scope)
    credential_set(tenant=tenant, platform="mailchimp", purpose="api_token", secret="key-us19", scope=scope)
    mailchimp = FakeMailchimp(connection)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru(live_server.url)
        mock.add_callback(responses.PATCH, f"{API}/lists/{LIST}/members/{HASH}", callback=mailchimp.patch)
        mock.add_callback(responses.POST, f"{API}/lists/{LIST}/members/{HASH}/tags", callback=mailchimp.tags)
        # given the subscriber exists in Mailchimp and, through one sync, in Virtuous
        mailchimp.deliver({**mailchimp.profile_fields(), "type": "subscribe"})
        inbound_drain(seconds=0)
        _cycle(tenant, org, mailchimp)
        yield tenant, outsider, org, mailchimp


def test_a_change_on_each_side_makes_exactly_one_write_on_the_other_and_then_the_system_is_quiet(world):
    tenant, outsider, org, mailchimp = world
    contact = SandboxContact.objects.get(organization=org)
    record = SyncRecord.objects.get(tenant=tenant, partner_id=HASH)
    assert (record.sync_state, record.virtuous_id) == ("in_sync", str(contact.pk))
    baseline_virtuous, baseline_mailchimp = _virtuous_writes(tenant), len(mailchimp.writes)

    # when the subscriber edits their name in Mailchimp
    mailchimp.member["LNAME"] = "Byron"
    mailchimp.deliver(mailchimp.profile_fields())
    inbound_drain(seconds=0)
    for _ in range(3):
        _cycle(tenant, org, mailchimp)
    # then Virtuous receives exactly one write, Mailchimp none, and Virtuous shows the change
    assert _virtuous_writes(tenant) - baseline_virtuous == 1
    assert len(mailchimp.writes) == baseline_mailchimp
    contact.refresh_from_db()
    assert contact.individuals[0]["lastName"] == "Byron"

    # when a staff member renames the donor in Virtuous
    sandbox_contact_edit(
        organization=org,
        contact_id=contact.pk,
        changes={"contactIndividuals": [{"firstName": "Adele", "lastName": "Byron", "isPrimary": True}]},
    )
    inbound_drain(seconds=0)
    for _ in range(3):
        _cycle(tenant, org, mailchimp)
    # then Mailchimp receives exactly one write (Mailchimp's echo of it is dropped), Virtuous none
    assert mailchimp.writes[baseline_mailchimp:] == [("PATCH", {"merge_fields": {"FNAME": "Adele"}})]
    assert _virtuous_writes(tenant) - baseline_virtuous == 1
    results = InboundEvent.objects.filter(tenant=tenant, provider="mailchimp").values_list(
        "result", flat=True
    )
    assert [r.get("echoes") for r in results if r.get("echoes")] == [1]

    # and several more batch cycles produce no request on either side
    quiet_virtuous, quiet_mailchimp = _virtuous_writes(tenant), len(mailchimp.writes)
    org.counters.refresh_from_db()
    sandbox_requests = org.counters.requests_total
    for _ in range(4):
        _cycle(tenant, org, mailchimp)
    org.counters.refresh_from_db()
    assert (_virtuous_writes(tenant), len(mailchimp.writes)) == (quiet_virtuous, quiet_mailchimp)
    assert org.counters.requests_total == sandbox_requests
    assert not OutboundItem.objects.filter(tenant=tenant, state__in=["pending", "in_flight"]).exists()
    assert not OutboundItem.objects.filter(tenant=outsider).exists()


def test_the_mirror_matches_the_sandbox_after_webhooks_are_dropped_and_the_backstop_poll_runs(world):
    tenant, outsider, org, mailchimp = world
    # given webhooks are lost: the subscription delivers nowhere while Virtuous changes
    SandboxWebhook.objects.filter(organization=org).update(payload_url="http://127.0.0.1:9/dropped/")
    contact = SandboxContact.objects.get(organization=org)
    sandbox_contact_edit(organization=org, contact_id=contact.pk, changes={"name": "Ada L. Lovelace"})
    for amount in ("10.00", "25.50"):
        sandbox_gift_create(
            organization=org, contact_id=contact.pk, amount=amount, gift_date=datetime.now(UTC).date()
        )
    assert VirtuousGiftMirror.objects.filter(tenant=tenant).count() == 0
    # when the backstop poll runs (its checkpoint a while back, its once-a-minute slot free)
    from sync.models import SyncCheckpoint

    SyncCheckpoint.objects.filter(tenant=tenant, direction="inbound").update(last_run_at=None)
    counts = reconcile.reconcile_run(tenant=tenant, passes=("missed_webhooks",))["missed_webhooks"]
    assert counts["new"] >= 3
    # then the mirror holds exactly what the sandbox holds
    sandbox_gifts = {(g.pk, g.amount, g.contact_id) for g in SandboxGift.objects.filter(organization=org)}
    mirrored = {
        (g.virtuous_id, g.amount, g.contact_id) for g in VirtuousGiftMirror.objects.filter(tenant=tenant)
    }
    assert mirrored == sandbox_gifts
    assert VirtuousContactMirror.objects.get(tenant=tenant, virtuous_id=contact.pk).name == "Ada L. Lovelace"
    assert not VirtuousGiftMirror.objects.filter(tenant=outsider).exists()
    # and a second poll within the minute reads nothing
    again = reconcile.reconcile_run(tenant=tenant, passes=("missed_webhooks",))["missed_webhooks"]
    assert again["skipped_recent"] == 2 and again["seen"] == 0
    assert Operation.PARTNER_CONTACT_UPDATE not in set(
        OutboundItem.objects.filter(
            tenant=tenant, created_at__gt=datetime.now(UTC) - timedelta(seconds=1)
        ).values_list("operation", flat=True)
    )


def _delivery_status(connection, secret: str, n: int) -> str:
    from integrations.virtuous.webhooks import sign

    body = json.dumps(
        {"event": "GiftUpdate", "gift": {"id": n, "modifiedDateTimeUtc": f"2026-05-0{n}"}}
    ).encode()
    Client().post(
        reverse("integrations:receive", args=[connection.webhook_token]),
        data=body,
        content_type="application/json",
        HTTP_X_VIRTUOUS_SIGNATURE=sign(body, secret, "hex"),
    )
    return InboundEvent.objects.filter(connection=connection).order_by("-pk").first().status


def test_rotating_the_webhook_secret_accepts_old_and_new_during_the_overlap(sandboxed, live_server):
    from integrations.virtuous.services import (
        virtuous_webhook_secret_rotate,
        virtuous_webhook_secret_rotation_finish,
    )

    tenant = tenant_create(slug="rotate", name="Rotate")
    org = sandboxed(tenant)
    connection = virtuous_subscription_create(tenant=tenant, base_url=live_server.url)
    hook = SandboxWebhook.objects.get(organization=org)
    old, toggles = hook.secret, hook.toggles
    # when a rotation starts, Virtuous signs with the new secret and keeps every toggle
    virtuous_webhook_secret_rotate(tenant=tenant)
    hook.refresh_from_db()
    assert hook.secret != old and hook.toggles == toggles and hook.active
    # then deliveries signed with either secret are accepted during the overlap
    assert _delivery_status(connection, old, 1) == "pending"
    assert _delivery_status(connection, hook.secret, 2) == "pending"
    # and after the rotation finishes only the new one is
    virtuous_webhook_secret_rotation_finish(tenant=tenant)
    assert _delivery_status(connection, old, 3) == "rejected"
    assert _delivery_status(connection, hook.secret, 4) == "pending"
