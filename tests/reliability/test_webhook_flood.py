"""The same webhook delivered 50 times at once becomes one inbound event and one queue item."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection as db_connection
from django.test import Client
from django.urls import reverse

from integrations.donorbox import webhooks
from integrations.models import InboundEvent
from integrations.services import connection_create
from sync.inbound.drain import inbound_drain
from sync.models import OutboundItem
from tenants.services import credential_set
from tests.integrations.conftest import fixture_bytes
from tests.reliability.conftest import needs_postgres

SECRET = "dbx_flood_secret_0001"
DELIVERIES = 50

pytestmark = [pytest.mark.postgres, pytest.mark.slow, needs_postgres]


def test_fifty_concurrent_deliveries_of_one_event_make_one_queue_item(transactional_db, tenant, other_tenant):
    connection = connection_create(tenant=tenant, provider="donorbox", default_project_code="GEN")
    credential_set(
        tenant=tenant,
        platform="donorbox",
        purpose="webhook_secret",
        secret=SECRET,
        scope=connection.credential_scope,
    )
    body = fixture_bytes("donorbox", "donation.created.v1.json")
    headers = {"HTTP_DONORBOX_SIGNATURE": webhooks.sign(body, SECRET, int(time.time()))}
    url = reverse("integrations:receive", args=[connection.webhook_token])
    start = threading.Barrier(DELIVERIES)

    def deliver(_: int) -> int:
        # Each thread is its own request with its own database connection: the race is in the
        # database, where the dedupe key's unique constraint decides. (The live server's listen
        # backlog, not the platform, would refuse 50 simultaneous sockets.)
        try:
            start.wait(timeout=30)
            return Client().post(url, data=body, content_type="application/json", **headers).status_code
        finally:
            db_connection.close()

    with ThreadPoolExecutor(max_workers=DELIVERIES) as pool:
        statuses = list(pool.map(deliver, range(DELIVERIES)))

    assert statuses == [200] * DELIVERIES  # every delivery acknowledged, so the sender stops retrying
    events = InboundEvent.objects.filter(connection=connection)
    assert events.filter(status="pending").count() == 1
    assert events.filter(status="duplicate").count() == DELIVERIES - 1
    inbound_drain(seconds=0)
    inbound_drain(seconds=0)
    assert OutboundItem.objects.filter(tenant=tenant, operation="gift_transaction").count() == 1
    assert OutboundItem.objects.filter(tenant=tenant, operation="contact_transaction").count() == 1
    assert not OutboundItem.objects.filter(tenant=other_tenant).exists()
