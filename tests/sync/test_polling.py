"""Running pollers: cadence, one run at a time, checkpoints, and the three-strikes circuit breaker."""

from datetime import timedelta

import pytest
import responses
from django.core import mail
from django.utils import timezone

from integrations.models import Connection
from sync.inbound.polling import PollSkipped, connection_poll, connection_poll_claim, connections_poll_due
from sync.models import Alert
from tenants.services import credential_set, tenant_pause

DONATIONS = "https://donorbox.org/api/v1/donations"


@pytest.fixture
def polled(tenant, make_connection):
    connection = make_connection(tenant, "donorbox", capture_mode="polling")
    connection.settings = {"account_email": "ops@alpha.example"}
    connection.save()
    credential_set(
        tenant=tenant,
        platform="donorbox",
        purpose="api_token",
        secret="dbx-api-key",
        scope=connection.credential_scope,
    )
    return connection


def _donation(n: int, day: str) -> dict:
    return {
        "id": n,
        "amount": "10.00",
        "status": "paid",
        "donation_date": f"{day}T12:00:00Z",
        "currency": "usd",
        "campaign": {"id": 1},
        "donor": {"id": 900 + n, "first_name": "A", "last_name": "B", "email": f"d{n}@example.org"},
    }


@responses.activate
def test_three_failed_runs_in_a_row_pause_the_connection_for_a_day_and_alert(
    polled, tenant, django_capture_on_commit_callbacks
):
    tenant.alert_emails = "ops@alpha.example"
    tenant.save()
    responses.get(DONATIONS, status=500)
    for run in range(3):
        Connection.objects.filter(pk=polled.pk).update(last_poll_at=None)
        polled.refresh_from_db()
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(Exception, match="HTTP 500"):
            connection_poll(connection=polled)
        polled.refresh_from_db()
        if run < 2:
            assert polled.paused_until is None and polled.consecutive_failures == run + 1
    assert polled.paused_until > timezone.now() + timedelta(hours=23)
    assert polled.consecutive_failures == 0 and "HTTP 500" in polled.last_error
    assert Alert.objects.filter(tenant=tenant, kind="tenant_paused").count() == 1
    assert "polling paused for 24 h" in mail.outbox[0].subject
    assert polled.pk not in connections_poll_due()


@responses.activate
def test_a_successful_run_resets_the_failure_count_and_saves_the_checkpoint(polled):
    responses.get(DONATIONS, json=[_donation(1, "2026-11-01"), _donation(2, "2026-11-03")])
    Connection.objects.filter(pk=polled.pk).update(consecutive_failures=2)
    polled.refresh_from_db()
    counts = connection_poll(connection=polled)
    polled.refresh_from_db()
    assert counts == {"seen": 2, "new": 2}
    assert polled.consecutive_failures == 0 and polled.last_success_at is not None
    from sync.models import SyncCheckpoint

    cp = SyncCheckpoint.objects.get(
        tenant=polled.tenant, scope=polled.credential_scope, resource_type="donations"
    )
    assert (cp.last_processed_timestamp.date().isoformat(), cp.last_processed_id) == ("2026-11-03", "2")


def test_only_one_run_takes_the_poll_slot(polled):
    stale = Connection.objects.get(pk=polled.pk)
    assert connection_poll_claim(connection=polled) is True
    assert connection_poll_claim(connection=stale) is False  # it saw the old last_poll_at
    with pytest.raises(PollSkipped):
        connection_poll(connection=stale)


def test_cadence_follows_the_polling_role(polled, tenant, other_tenant, make_connection):
    webhook_only = make_connection(other_tenant, "donorbox")
    assert polled.pk in connections_poll_due() and webhook_only.pk not in connections_poll_due()
    Connection.objects.filter(pk=polled.pk).update(last_poll_at=timezone.now() - timedelta(minutes=20))
    assert polled.pk in connections_poll_due()  # primary: every 15 minutes
    Connection.objects.filter(pk=polled.pk).update(polling_role="backstop")
    assert polled.pk not in connections_poll_due()  # backstop: once a day by default
    Connection.objects.filter(pk=polled.pk).update(polling_role="off", last_poll_at=None)
    assert polled.pk not in connections_poll_due()
    Connection.objects.filter(pk=polled.pk).update(polling_role="primary")
    tenant_pause(tenant=tenant, reason="401")
    assert polled.pk not in connections_poll_due()
