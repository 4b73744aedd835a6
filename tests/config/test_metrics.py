"""/metrics: who may scrape, what the database figures say per tenant, and the recorded events."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from config import metrics
from sync.models import Attempt, DeadLetter, OutboundItem
from tenants import services as tenant_services
from tests.sync.conftest import enqueue_gifts

TOKEN = "metrics-token-for-tests-0123456789"


@pytest.fixture
def scrape(client, settings):
    settings.METRICS_TOKEN = TOKEN

    def _scrape() -> dict[tuple[str, tuple], float]:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain")
        samples = {}
        for family in text_string_to_metric_families(response.content.decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    return _scrape


def value(samples, name, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.mark.django_db
def test_metrics_are_refused_without_the_token_or_an_allowed_address(client, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    # Not configured at all: refused, with the same answer.
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


@pytest.mark.django_db
def test_an_allowed_network_may_scrape_without_a_token(client, settings):
    import ipaddress

    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.1.0.0/16")]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1").status_code == 403
    # Probes reach the process by address over plain HTTP: no host check, no HTTPS redirect.
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_HOST="10.9.9.9:8000").status_code == 200


def test_queue_dead_letters_budget_and_pause_per_tenant(scrape, tenant, other_tenant):
    items = enqueue_gifts(tenant, 3)
    enqueue_gifts(other_tenant, 1)
    OutboundItem.objects.filter(pk=items[0].pk).update(
        state=OutboundItem.State.DEAD, next_attempt_at=timezone.now()
    )
    OutboundItem.objects.filter(pk=items[1].pk).update(
        next_attempt_at=timezone.now() - timezone.timedelta(minutes=10)
    )
    DeadLetter.objects.create(
        tenant=tenant, item=items[0], operation_type=items[0].operation, original_payload={}
    )
    OutboundItem.objects.filter(pk=items[2].pk).update(state=OutboundItem.State.DISCARDED)
    resolved = DeadLetter.objects.create(
        tenant=tenant, item=items[2], operation_type=items[2].operation, original_payload={}
    )
    DeadLetter.objects.filter(pk=resolved.pk).update(resolution=DeadLetter.Resolution.DISCARDED)
    for _ in range(4):
        Attempt.objects.create(tenant=tenant, method="POST", path="/api/v2/Gift/Transaction", status_code=200)
    tenant_services.tenant_pause(tenant=other_tenant, reason="test")

    samples = scrape()
    assert value(samples, "giftline_queue_depth", tenant="alpha", direction="outbound", state="pending") == 1
    assert value(samples, "giftline_queue_depth", tenant="alpha", direction="outbound", state="dead") == 1
    assert value(samples, "giftline_queue_depth", tenant="bravo", direction="outbound", state="pending") == 1
    assert value(samples, "giftline_queue_oldest_due_seconds", tenant="alpha") >= 600
    assert value(samples, "giftline_dead_letters_open", tenant="alpha") == 1
    assert value(samples, "giftline_dead_letters_opened_total", tenant="alpha") == 2
    assert value(samples, "giftline_dead_letters_resolved_total", tenant="alpha") == 1
    assert value(samples, "giftline_dead_letters_open", tenant="bravo") == 0
    assert value(samples, "giftline_budget_used", tenant="alpha") == 4
    assert value(samples, "giftline_budget_left", tenant="alpha") == tenant.usable_hourly_budget - 4
    assert value(samples, "giftline_budget_used", tenant="bravo") == 0
    assert value(samples, "giftline_tenant_paused", tenant="bravo") == 1
    assert value(samples, "giftline_tenant_paused", tenant="alpha") == 0
    # No schedules installed in this database: the gauge that alerting watches says so.
    assert value(samples, "giftline_schedules_missing") > 0


def test_labels_name_tenants_by_slug_never_a_donor_or_an_item(scrape, tenant, other_tenant, client):
    items = enqueue_gifts(tenant, 2)
    metrics.inbound_outcome(tenant.pk, "processed")
    metrics.inbound_outcome(tenant.pk, "something-unexpected")
    body = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    for item in items:
        assert str(item.public_id) not in body
        assert item.external_id not in body
    assert "donor1@example.org" not in body
    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-", body)
    samples = scrape()
    assert value(samples, "giftline_inbound_events_total", tenant="alpha", outcome="other") >= 1


def test_calls_are_counted_by_status_class_and_429s_apart(tenant, scrape):
    seen = []
    record = metrics.observed_calls(tenant, seen.append)
    before = scrape()
    base_2xx = value(before, "giftline_virtuous_calls_total", tenant="alpha", status_class="2xx") or 0
    base_429 = value(before, "giftline_virtuous_rate_limited_total", tenant="alpha") or 0
    base_net = value(before, "giftline_virtuous_calls_total", tenant="alpha", status_class="network") or 0
    for status in (200, 201, 429, None):
        record(SimpleNamespace(status_code=status, duration_ms=12))
    after = scrape()
    assert value(after, "giftline_virtuous_calls_total", tenant="alpha", status_class="2xx") == base_2xx + 2
    assert value(after, "giftline_virtuous_rate_limited_total", tenant="alpha") == base_429 + 1
    assert (
        value(after, "giftline_virtuous_calls_total", tenant="alpha", status_class="network") == base_net + 1
    )
    assert len(seen) == 4  # the drain's own recorder still gets every call


def test_confirmation_latency_is_observed_when_items_are_confirmed(tenant, scrape):
    from sync.outbound.confirm import outbound_confirm

    item = enqueue_gifts(tenant, 1)[0]
    OutboundItem.objects.filter(pk=item.pk).update(
        state=OutboundItem.State.SUBMITTED, submitted_at=timezone.now() - timezone.timedelta(minutes=30)
    )
    before = scrape()
    outbound_confirm(
        tenant=tenant,
        kind="gift",
        external_source=item.external_source,
        external_id=item.external_id,
        virtuous_id="42",
    )
    after = scrape()

    def delta(**labels):
        name = "giftline_confirmation_latency_seconds_" + labels.pop("kind")
        return (value(after, name, tenant="alpha", **labels) or 0) - (
            value(before, name, tenant="alpha", **labels) or 0
        )

    assert delta(kind="count") == 1
    assert delta(kind="bucket", le="900.0") == 0  # thirty minutes is not under fifteen
    assert delta(kind="bucket", le="1800.0") == 0 or delta(kind="bucket", le="3600.0") == 1


def test_calls_in_flight_go_up_during_a_call_and_back_down():
    observed = []

    @metrics.calls_in_flight
    def call():
        observed.append(metrics.DRAIN_CALLS_IN_FLIGHT._value.get())

    start = metrics.DRAIN_CALLS_IN_FLIGHT._value.get()
    call()
    assert observed == [start + 1]
    assert metrics.DRAIN_CALLS_IN_FLIGHT._value.get() == start


def test_poll_failures_are_counted_by_tenant_and_provider(tenant, scrape):
    before = value(scrape(), "giftline_poll_failures_total", tenant="alpha", provider="stripe") or 0
    metrics.poll_failed(tenant.pk, "stripe")
    assert value(scrape(), "giftline_poll_failures_total", tenant="alpha", provider="stripe") == before + 1
