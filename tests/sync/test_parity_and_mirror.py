"""Webhook/poll parity, inbound polling cadence, and the reporting mirror's export and admin."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from integrations.models import Connection, InboundEvent
from integrations.virtuous.inbound import VirtuousChange
from integrations.virtuous.services import virtuous_connection_get_or_create
from sync.inbound.apply import virtuous_change_apply
from sync.inbound.polling import virtuous_poll_due
from sync.models import SyncCheckpoint, VirtuousGiftMirror
from sync.ops import reconcile
from sync.ops.parity import parity_report
from tenants.models import Tenant


def _gift(gid, modified, amount="10.00", source=""):
    return {
        "id": gid,
        "contactId": 5,
        "amount": amount,
        "giftDate": "2026-05-01",
        "transactionSource": source,
        "modifiedDateTimeUtc": modified,
    }


def _event(connection, capture, record, key):
    body = json.dumps({"event": "GiftCreate", "gift": record}).encode()
    return InboundEvent.objects.create(
        tenant=connection.tenant,
        connection=connection,
        provider="virtuous",
        capture=capture,
        event_type="giftCreate",
        dedupe_key=key,
        body=body,
        content_type="application/json",
        status=InboundEvent.Status.PROCESSED,
    )


def test_parity_report_counts_both_webhook_only_and_poll_only(tenant, other_tenant):
    connection = virtuous_connection_get_or_create(tenant=tenant)
    outsider = virtuous_connection_get_or_create(tenant=other_tenant)
    # given gift 1 seen by both paths, gift 2 by webhook only, gift 3 by poll only
    _event(connection, "webhook", _gift(1, "2026-05-01T10:00:00Z"), "w1")
    _event(connection, "poll", _gift(1, "2026-05-01T10:00:00Z"), "p1")
    _event(connection, "webhook", _gift(2, "2026-05-01T11:00:00Z"), "w2")
    _event(connection, "poll", _gift(3, "2026-05-01T12:00:00Z"), "p3")
    _event(outsider, "poll", _gift(9, "2026-05-01T12:00:00Z"), "p9")
    now = timezone.now()
    report = parity_report(
        connection=connection, since=now - timedelta(days=1), until=now + timedelta(seconds=1)
    )
    assert (report["both"], report["webhook_only"], report["poll_only"]) == (1, 1, 1)
    assert report["poll_only_keys"] == ["gift:3:2026-05-01T12:00:00Z"]
    assert (report["webhook_events"], report["poll_events"], report["parity_percent"]) == (2, 2, 33.3)
    # and a window that ends before them sees nothing
    empty = parity_report(connection=connection, since=now - timedelta(days=2), until=now - timedelta(days=1))
    assert empty["changes"] == 0 and empty["parity_percent"] is None
    # and the command prints the same figures
    out = io.StringIO()
    call_command("parity_report", tenant.slug, "--list", stdout=out)
    assert "both=1 webhook_only=1 poll_only=1" in out.getvalue() and "poll only: gift:3:" in out.getvalue()


def test_parity_of_a_source_connection_compares_the_queue_keys_its_events_produced(tenant):
    from integrations.services import connection_create

    connection = connection_create(tenant=tenant, provider="mailchimp", capture_mode="hybrid")
    for capture, keys in (("webhook", ["k1", "k2"]), ("poll", ["k2", "k3"]), ("poll", [])):
        InboundEvent.objects.create(
            tenant=tenant,
            connection=connection,
            provider="mailchimp",
            capture=capture,
            status=InboundEvent.Status.PROCESSED if keys else InboundEvent.Status.PENDING,
            result={"keys": keys} if keys else {},
        )
    now = timezone.now()
    report = parity_report(
        connection=connection, since=now - timedelta(hours=1), until=now + timedelta(seconds=1)
    )
    assert (report["both"], report["webhook_only"], report["poll_only"], report["unprocessed"]) == (
        1,
        1,
        1,
        1,
    )


@pytest.mark.parametrize(
    "role,minutes_ago,due",
    [
        ("primary", 16, True),
        ("primary", 5, False),
        ("backstop", 16, False),
        ("backstop", 1441, True),
        ("off", 9999, False),
    ],
)
def test_inbound_polling_cadence_follows_the_connection_role(tenant, role, minutes_ago, due):
    connection = virtuous_connection_get_or_create(tenant=tenant)
    Connection.objects.filter(pk=connection.pk).update(
        polling_role=role, last_poll_at=timezone.now() - timedelta(minutes=minutes_ago)
    )
    connection.refresh_from_db()
    assert virtuous_poll_due(connection=connection) is due


class _Client:
    def __init__(self, records):
        self.records = records
        self.reads = 0

    def iter_modified_since(self, resource, since):
        self.reads += 1
        return iter(self.records if resource == "gift" else [])


def test_inbound_polling_goes_through_the_handler_once_and_reads_each_resource_at_most_once_a_minute(
    tenant, other_tenant
):
    Tenant.objects.filter(pk=tenant.pk).update(inbound_mode="from_elsewhere")
    tenant.refresh_from_db()
    client = _Client([_gift(1, "2026-05-01T10:00:00Z"), _gift(2, "2026-05-01T11:00:00Z")])
    first = reconcile.reconcile_missed_webhooks(tenant=tenant, client=client)
    assert (first["seen"], first["new"], first["elsewhere"]) == (2, 2, 2)
    assert set(VirtuousGiftMirror.objects.filter(tenant=tenant).values_list("virtuous_id", flat=True)) == {
        1,
        2,
    }
    events = InboundEvent.objects.filter(tenant=tenant, capture="poll")
    assert set(events.values_list("status", flat=True)) == {"processed"}
    # when asked again within the minute, nothing is read
    again = reconcile.reconcile_missed_webhooks(tenant=tenant, client=client)
    assert again["skipped_recent"] == 2 and client.reads == 2
    # and after the minute, versions already captured are not applied twice
    SyncCheckpoint.objects.filter(tenant=tenant).update(last_run_at=timezone.now() - timedelta(seconds=61))
    later = reconcile.reconcile_missed_webhooks(tenant=tenant, client=client)
    assert (later["seen"], later["new"]) == (2, 0)
    assert not VirtuousGiftMirror.objects.filter(tenant=other_tenant).exists()


def test_mirror_export_writes_one_tenants_rows(tenant, other_tenant, tmp_path):
    for t in (tenant, other_tenant):
        Tenant.objects.filter(pk=t.pk).update(inbound_mode="from_elsewhere")
        t.refresh_from_db()
    virtuous_change_apply(
        tenant=tenant, change=VirtuousChange("giftCreate", "gift", _gift(1, "2026-05-01T10:00:00Z"))
    )
    virtuous_change_apply(
        tenant=other_tenant, change=VirtuousChange("giftCreate", "gift", _gift(2, "2026-05-01T10:00:00Z"))
    )
    path = tmp_path / "gifts.csv"
    call_command("mirror_export", tenant.slug, "--resource", "gift", "--out", str(path), stderr=io.StringIO())
    lines = path.read_text().splitlines()
    assert lines[0].startswith("virtuous_id,contact_id,amount,gift_date")
    assert lines[1:] == ["1,5,10.00,2026-05-01,,,False,2026-05-01T10:00:00+00:00"]


def test_admin_parity_view_and_mirror_export_are_scoped_to_the_users_tenants(
    tenant, other_tenant, staff_user
):
    from django.contrib.auth.models import Permission

    staff_user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_tenant", "view_virtuousgiftmirror", "view_tenanthealth"]
        )
    )
    tenant.assigned_staff.add(staff_user)
    Tenant.objects.filter(pk=tenant.pk).update(inbound_mode="from_elsewhere")
    tenant.refresh_from_db()
    virtuous_change_apply(
        tenant=tenant, change=VirtuousChange("giftCreate", "gift", _gift(1, "2026-05-01T10:00:00Z"))
    )
    Tenant.objects.filter(pk=other_tenant.pk).update(inbound_mode="from_elsewhere")
    other_tenant.refresh_from_db()
    virtuous_change_apply(
        tenant=other_tenant, change=VirtuousChange("giftCreate", "gift", _gift(2, "2026-05-01T10:00:00Z"))
    )
    virtuous_connection_get_or_create(tenant=tenant)
    web = Client()
    web.force_login(staff_user)
    page = web.get(reverse("admin:sync_tenanthealth_parity", args=[tenant.public_id]))
    assert page.status_code == 200 and b'id="parity-both"' in page.content
    assert (
        web.get(reverse("admin:sync_tenanthealth_parity", args=[other_tenant.public_id])).status_code == 404
    )
    listing = web.get(reverse("admin:sync_virtuousgiftmirror_changelist"))
    assert listing.status_code == 200
    ids = [str(r.pk) for r in VirtuousGiftMirror.objects.all()]
    exported = web.post(
        reverse("admin:sync_virtuousgiftmirror_changelist"),
        {"action": "export_csv", "_selected_action": ids},
    )
    rows = exported.content.decode().splitlines()
    assert rows[0].startswith("tenant,virtuous_id") and len(rows) == 2 and rows[1].startswith("alpha,1,")
