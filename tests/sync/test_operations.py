"""Operations services behind the admin and their commands: replay, checkpoint reset, offboarding, health."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from integrations.models import Connection, InboundEvent
from integrations.services import connection_onboard
from integrations.virtuous.errors import ErrorClass, VirtuousError
from sync.inbound.checkpoints import checkpoint_reset
from sync.inbound.replay import inbound_events_replay
from sync.models import DeadLetter, OutboundItem, SyncCheckpoint
from sync.ops.health import tenant_health_overview
from sync.ops.offboard import OffboardError, tenant_offboard
from sync.outbound.drain import outbound_drain
from sync.selectors import tenant_health
from tenants.models import AuditEvent, Credential, Tenant
from tenants.services import Actor, tenant_pause
from tests.sync.conftest import enqueue_gifts

ACTOR = Actor(via="test")


def _event(connection: Connection, status: str, n: int) -> InboundEvent:
    return InboundEvent.objects.create(
        tenant=connection.tenant,
        connection=connection,
        provider=connection.provider,
        event_type="donation",
        dedupe_key=f"k{n}",
        body=b"{}",
        status=status,
        attempts=3,
        signature_valid=status != "rejected",
    )


@pytest.fixture
def connections(tenant, other_tenant):
    return (
        connection_onboard(
            tenant=tenant, provider="donorbox", capture_mode="webhook", secrets={"webhook_secret": "s1"}
        ),
        connection_onboard(tenant=other_tenant, provider="donorbox", capture_mode="webhook"),
    )


def test_replay_puts_back_processed_failed_and_review_events_only(connections):
    mine, theirs = connections
    events = [
        _event(mine, s, i)
        for i, s in enumerate(["processed", "failed", "needs_review", "rejected", "duplicate"])
    ]
    outsider = _event(theirs, "failed", 99)
    n = inbound_events_replay(events=[*events, outsider][:5], actor=ACTOR)
    assert n == 3
    statuses = dict(InboundEvent.objects.values_list("dedupe_key", "status"))
    assert statuses == {
        "k0": "pending",
        "k1": "pending",
        "k2": "pending",
        "k3": "rejected",
        "k4": "duplicate",
        "k99": "failed",
    }
    assert InboundEvent.objects.get(dedupe_key="k1").attempts == 0
    assert AuditEvent.objects.filter(action="inbound_event.replayed").count() == 3


def test_checkpoint_reset_is_audited_and_touches_one_checkpoint(tenant, other_tenant):
    now = timezone.now()
    mine = SyncCheckpoint.objects.create(
        tenant=tenant,
        resource_type="gift",
        direction="inbound",
        last_processed_timestamp=now,
        last_processed_id="9",
    )
    theirs = SyncCheckpoint.objects.create(
        tenant=other_tenant, resource_type="gift", direction="inbound", last_processed_timestamp=now
    )
    checkpoint_reset(checkpoint=mine, actor=ACTOR, to=now - timedelta(days=2))
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.last_processed_timestamp, mine.last_processed_id) == (now - timedelta(days=2), "")
    assert theirs.last_processed_timestamp == now
    assert AuditEvent.objects.get(action="checkpoint.reset").tenant == tenant


class _Client:
    def __init__(self, error=None):
        self.deleted, self.error = [], error

    def webhook_delete(self, webhook_id):
        if self.error:
            raise self.error
        self.deleted.append(webhook_id)


def _with_data(tenant, fake_virtuous):
    """One dead-lettered gift and one submitted gift."""
    start = 50 if tenant.slug == "bravo" else 1
    enqueue_gifts(tenant, 1, start=start)
    fake_virtuous.outcomes.append(VirtuousError(ErrorClass.PERMANENT, "bad", status_code=422))
    outbound_drain(tenant=tenant, client_factory=fake_virtuous.factory)
    enqueue_gifts(tenant, 1, start=start + 1)
    outbound_drain(tenant=tenant, client_factory=fake_virtuous.factory)


def test_offboarding_stops_unsubscribes_retires_and_deletes_only_that_tenant(
    tenant, other_tenant, connections, fake_virtuous
):
    _with_data(tenant, fake_virtuous)
    _with_data(other_tenant, fake_virtuous)
    Tenant.objects.filter(pk=tenant.pk).update(virtuous_webhook_id="77")
    tenant.refresh_from_db()
    client = _Client()
    result = tenant_offboard(tenant=tenant, actor=ACTOR, client=client)
    tenant.refresh_from_db()
    assert client.deleted == ["77"] and result.webhook == "deleted" and tenant.virtuous_webhook_id == ""
    assert tenant.status == "paused" and not Connection.objects.filter(tenant=tenant, is_active=True).exists()
    assert set(Credential.objects.filter(tenant=tenant).values_list("state", "ciphertext")) == {
        ("retired", "")
    }
    assert (
        not OutboundItem.objects.filter(tenant=tenant).exists()
        and not DeadLetter.objects.filter(tenant=tenant).exists()
    )
    assert OutboundItem.objects.filter(tenant=other_tenant).count() == 2
    assert Credential.objects.filter(tenant=other_tenant, state="active").exists()
    assert AuditEvent.objects.filter(tenant=tenant, action="tenant.offboarded").exists()


def test_offboarding_can_anonymise_instead(tenant, fake_virtuous):
    _with_data(tenant, fake_virtuous)
    tenant_offboard(tenant=tenant, actor=ACTOR, data="anonymise", client=_Client())
    assert OutboundItem.objects.filter(tenant=tenant).count() == 2
    assert all(p == {} for p in OutboundItem.objects.values_list("payload", flat=True))
    assert all(p == {} for p in DeadLetter.objects.values_list("original_payload", flat=True))


def test_offboarding_keeps_the_credentials_when_the_webhook_cannot_be_deleted(tenant):
    Tenant.objects.filter(pk=tenant.pk).update(virtuous_webhook_id="77")
    tenant.refresh_from_db()
    with pytest.raises(OffboardError):
        tenant_offboard(
            tenant=tenant,
            actor=ACTOR,
            client=_Client(VirtuousError(ErrorClass.TRANSIENT, "down", status_code=503)),
        )
    tenant.refresh_from_db()
    assert tenant.status == "paused" and tenant.virtuous_webhook_id == "77"
    assert Credential.objects.filter(tenant=tenant, state="active").exists()


def test_overview_puts_tenants_that_need_attention_first(tenant, other_tenant, connections, fake_virtuous):
    Tenant.objects.create(slug="calm", name="Aardvark Calm")
    _with_data(other_tenant, fake_virtuous)
    tenant_pause(tenant=tenant, reason="401 from Virtuous")
    _event(connections[1], "rejected", 5)
    rows = tenant_health_overview(tenants=Tenant.objects.all())
    assert [r.tenant.slug for r in rows] == ["bravo", "alpha", "calm"]
    assert [c.kind for c in rows[0].concerns] == ["dead_letters", "signature_failures"]
    assert rows[0].reasons[1] == "1 delivery with a bad signature in 24 h"
    assert rows[1].reasons == ["Paused: 401 from Virtuous"] and rows[2].reasons == []


def test_dashboard_figures_are_per_tenant(tenant, other_tenant, fake_virtuous):
    _with_data(tenant, fake_virtuous)
    _with_data(other_tenant, fake_virtuous)
    health = tenant_health(tenant=tenant)
    depth = {state: n for _, n, state in health["depth"]}
    assert depth["dead"] == 1 and depth["submitted"] == 1
    assert health["open_dead_letters"] == 1 and health["failed_24h"] == 1 and health["submitted_24h"] == 1
    assert sum(bar["failed"] for bar in health["chart"]) == 1 and len(health["chart"]) == 24
    assert health["budget"]["used_this_hour"] == 2  # its two calls, not the other tenant's


def test_commands_call_the_same_services(tenant, other_tenant, fake_virtuous):
    _with_data(tenant, fake_virtuous)
    _with_data(other_tenant, fake_virtuous)
    out = StringIO()
    call_command("sync_discard_dead_letters", "--tenant", "alpha", "--reason", "test data", stdout=out)
    assert "Discarded 1 dead letter(s)" in out.getvalue()
    assert DeadLetter.objects.get(tenant=other_tenant).resolution == "open"
    theirs = DeadLetter.objects.get(tenant=other_tenant)
    call_command("sync_replay_dead_letters", "--ids", str(theirs.public_id), stdout=out)
    theirs.refresh_from_db()
    assert theirs.resolution == "replayed"
    call_command("tenant_pause", "alpha", "--reason", "maintenance", stdout=out)
    tenant.refresh_from_db()
    assert (tenant.status, tenant.paused_reason) == ("paused", "maintenance")
    call_command("tenant_resume", "alpha", stdout=out)
    tenant.refresh_from_db()
    assert tenant.status == "active"
    assert (
        AuditEvent.objects.filter(
            via="cli", action__in=["tenant.paused", "tenant.resumed", "dead_letter.discarded"]
        ).count()
        == 3
    )


def test_offboard_command_asks_for_confirmation_and_checkpoint_and_replay_commands_run(tenant, connections):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--yes"):
        call_command("tenant_offboard", "alpha")
    assert Tenant.objects.get(pk=tenant.pk).status == "active"
    SyncCheckpoint.objects.create(
        tenant=tenant, resource_type="gift", direction="inbound", last_processed_timestamp=timezone.now()
    )
    out = StringIO()
    call_command("checkpoint_reset", "alpha", "--resource", "gift", "--direction", "inbound", stdout=out)
    assert SyncCheckpoint.objects.get(tenant=tenant).last_processed_timestamp is None
    _event(connections[0], "failed", 1)
    _event(connections[1], "failed", 2)
    call_command("inbound_events_replay", "--tenant", "alpha", "--status", "failed", stdout=out)
    assert "Queued 1 event(s)" in out.getvalue()
    assert dict(InboundEvent.objects.values_list("dedupe_key", "status")) == {"k1": "pending", "k2": "failed"}
