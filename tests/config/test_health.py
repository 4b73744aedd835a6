"""Liveness, readiness and the schedules system check: what they report, and that no secret shows."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule

from sync.checks import schedules_installed
from sync.schedules import schedules_apply


@pytest.fixture
def fresh_cluster(monkeypatch):
    """A cluster heartbeat as django-q2 saves it to the broker every guard cycle."""
    stats = [SimpleNamespace(status=Conf.IDLE, timestamp=timezone.now())]
    monkeypatch.setattr("django_q.status.Stat.get_all", staticmethod(lambda broker=None: stats))
    return stats


def test_liveness_answers_without_touching_the_database(client):
    # No django_db mark: pytest-django makes any query here an error.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


@pytest.mark.django_db
def test_probes_by_address_over_http_are_answered_not_redirected(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/healthz", HTTP_HOST="10.0.0.7:8000")
    assert response.status_code == 200


@pytest.mark.django_db
def test_readiness_says_when_sync_schedules_apply_never_ran(client, fresh_cluster):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["schedules"]["ok"] is False
    assert "sync_schedules_apply" in body["checks"]["schedules"]["detail"]
    # The web tier's own probe does not depend on the workers.
    assert client.get("/readyz/web").status_code == 200


@pytest.mark.django_db
def test_readiness_is_green_with_schedules_on_time_and_a_live_cluster(client, fresh_cluster):
    schedules_apply()
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["clusters"] == {"ok": True, "detail": "1 cluster(s) alive"}


@pytest.mark.django_db
def test_readiness_fails_when_no_scheduler_moves_the_schedules_on(client, fresh_cluster, settings):
    schedules_apply()
    Schedule.objects.filter(name="inbound-dispatch").update(
        next_run=timezone.now() - timezone.timedelta(seconds=settings.HEALTH_SCHEDULER_STALE_SECONDS + 60)
    )
    body = client.get("/readyz").json()
    assert body["checks"]["schedules"]["ok"] is False
    assert "no scheduler is running" in body["checks"]["schedules"]["detail"]


@pytest.mark.django_db
def test_readiness_fails_without_a_fresh_cluster_heartbeat(client, fresh_cluster, settings):
    schedules_apply()
    fresh_cluster[0].timestamp = timezone.now() - timezone.timedelta(
        seconds=settings.HEALTH_CLUSTER_STALE_SECONDS + 5
    )
    body = client.get("/readyz").json()
    assert body["checks"]["clusters"]["ok"] is False
    fresh_cluster[0].timestamp = timezone.now()
    fresh_cluster[0].status = Conf.STOPPED
    assert client.get("/readyz").json()["checks"]["clusters"]["ok"] is False


@pytest.mark.django_db
def test_an_unreachable_broker_is_reported_by_class_never_by_its_url(client, settings, fresh_cluster):
    # A closed port on loopback, with a password in the URL that must not be echoed.
    settings.REDIS_URL = "redis://:hunter2-broker-password@127.0.0.1:1/0"
    settings.HEALTH_CHECK_TIMEOUT_SECONDS = 0.5
    response = client.get("/readyz")
    assert response.status_code == 503
    text = response.content.decode()
    assert "hunter2" not in text and "127.0.0.1:1" not in text
    body = json.loads(text)
    assert body["checks"]["broker"] == {"ok": False, "detail": "unreachable (ConnectionError)"}
    assert body["checks"]["clusters"]["detail"].startswith("not checked")


@pytest.mark.django_db
def test_an_unreachable_database_is_reported_without_detail(client, monkeypatch):
    from django.db import OperationalError

    def refuse():
        raise OperationalError('connection to server at "db.internal" failed: password=s3cret')

    monkeypatch.setitem(__import__("config.health").health.WEB_CHECKS, "database", refuse)
    response = client.get("/readyz/web")
    assert response.status_code == 503
    assert "s3cret" not in response.content.decode() and "db.internal" not in response.content.decode()


def test_health_endpoints_take_only_get(client):
    assert client.post("/readyz").status_code == 405


@pytest.mark.django_db
def test_system_check_warns_until_the_schedules_are_installed():
    [warning] = schedules_installed(databases=["default"])
    assert warning.id == "giftline.W101"
    assert "sync_schedules_apply" in warning.hint
    # Outside `check --database`, it does not touch the database.
    assert schedules_installed(databases=None) == []
    schedules_apply()
    assert schedules_installed(databases=["default"]) == []


@pytest.mark.django_db
def test_check_command_fails_on_the_warning_when_asked_to():
    with pytest.raises(SystemCheckError, match="giftline.W101"):
        call_command("check", "--database", "default", "--fail-level", "WARNING")
