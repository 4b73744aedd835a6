"""Auth, rate-limit headers, 429s and every fault knob."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from integrations.sandbox import limits, services
from integrations.sandbox.models import SandboxRateWindow, SandboxTransaction
from tests.integrations.sandbox.conftest import BASE, counters, gift_item


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic abc", "bearer-less"])
def test_missing_or_wrong_token_is_401_plain_text(client, org, header):
    kwargs = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.get(BASE + "Organization/Current", **kwargs)
    assert response.status_code == 401
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == b"Authorization has been denied for this request."
    assert "X-RateLimit-Limit" not in response
    assert counters(org)["requests_total"] == 0


def test_organization_current_and_rate_headers(api, org):
    before = int(time.time())
    response = api.get("Organization/Current")
    assert response.status_code == 200
    assert response.json() == {
        "organizationId": org.pk,
        "organizationName": "Alpha Food Bank (Sandbox)",
        "organizationUserId": org.pk,
        "organizationTimeZone": "America/Chicago",
        "userName": "sandbox-api-key",
        "isEnabled": True,
    }
    assert response["X-RateLimit-Limit"] == "5000"
    assert response["X-RateLimit-Remaining"] == "4999"
    reset = int(response["X-RateLimit-Reset"])
    assert before < reset <= before + 3600 and reset % 3600 == 0
    assert counters(org)["requests_total"] == 1


def test_token_is_stored_hashed_and_shown_once(org_and_token):
    org, token = org_and_token
    assert token.startswith("vsbx_") and token not in org.token_hash
    assert services.sandbox_org_authenticate(token=token) == org
    new_token = services.sandbox_org_token_regenerate(organization=org)
    assert services.sandbox_org_authenticate(token=token) is None
    assert services.sandbox_org_authenticate(token=new_token) == org


def test_tiny_window_gives_429_with_retry_after_then_recovers(api, org, monkeypatch):
    org.rate_limit, org.window_seconds = 2, 60
    org.save()
    now = 1_800_000_000.0  # a window boundary: 1_800_000_000 % 60 == 0
    monkeypatch.setattr(limits.time, "time", lambda: now + 15)
    assert api.get("Health")["X-RateLimit-Remaining"] == "1"
    assert api.get("Health")["X-RateLimit-Remaining"] == "0"
    limited = api.get("Health")
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "RATE_LIMITED"
    assert limited["Retry-After"] == "45"
    assert limited["X-RateLimit-Remaining"] == "0"
    assert limited["X-RateLimit-Reset"] == str(int(now) + 60)
    monkeypatch.setattr(limits.time, "time", lambda: now + 61)
    assert api.get("Health").status_code == 200
    # The new window's first hit dropped the old window row.
    assert list(SandboxRateWindow.objects.filter(organization=org).values_list("window_start", "hits")) == [
        (int(now) + 60, 1)
    ]
    assert counters(org)["rate_limited_responses"] == 1
    assert counters(org)["requests_total"] == 4


def test_rate_limited_write_stores_nothing(api, org):
    org.rate_limit = 0
    org.save()
    assert api.post("v2/Gift/Transaction", gift_item()).status_code == 429
    assert not SandboxTransaction.objects.exists()
    assert counters(org)["writes_total"] == 0


def test_429_storm_until_its_end(api, org):
    services.sandbox_storm_start(organization=org, seconds=300, retry_after=7)
    response = api.post("v2/Gift/Transaction", gift_item())
    assert response.status_code == 429
    assert response["Retry-After"] == "7"
    assert not SandboxTransaction.objects.exists()
    services.sandbox_faults_set(organization=org, storm_until=timezone.now() - dt.timedelta(seconds=1))
    assert api.post("v2/Gift/Transaction", gift_item()).status_code == 200
    assert counters(org)["rate_limited_responses"] == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_error_injection_answers_before_storing(api, org, status):
    services.sandbox_faults_set(organization=org, error_rate=1.0, error_statuses=str(status))
    response = api.post("v2/Gift/Transaction", gift_item())
    assert response.status_code == status
    assert response.json()["error"]["code"] == "SERVER_ERROR"
    assert "X-RateLimit-Remaining" in response
    assert not SandboxTransaction.objects.exists()
    assert counters(org)["faults_injected"] == 1 and counters(org)["writes_total"] == 0


def test_error_rate_zero_never_injects(api, org):
    services.sandbox_faults_set(organization=org, error_rate=0.0, error_statuses="500")
    assert all(api.get("Health").status_code == 200 for _ in range(20))
    assert counters(org)["faults_injected"] == 0


def test_error_statuses_must_be_http_errors(org):
    with pytest.raises(ValueError, match="400-599"):
        services.sandbox_faults_set(organization=org, error_statuses="200")


def test_added_latency_is_slept_on_every_request(api, org, no_sleep):
    services.sandbox_faults_set(organization=org, added_latency_ms=250)
    api.get("Health")
    api.get("Health")
    assert no_sleep == [0.25, 0.25]


def test_timeout_sleeps_after_the_write_is_stored(api, org, no_sleep):
    services.sandbox_faults_set(organization=org, timeout_rate=1.0, timeout_seconds=40)
    response = api.post("v2/Gift/Transaction", gift_item())
    assert no_sleep == [40]
    assert response.status_code == 200
    # The caller gave up after its read timeout, but the transaction was received: a retry is a duplicate.
    assert SandboxTransaction.objects.count() == 1
    assert api.post("v2/Gift/Transaction", gift_item()).status_code == 200
    assert SandboxTransaction.objects.get().submit_count == 2
    assert counters(org)["duplicate_submissions"] == 1


def test_faults_reset(org):
    services.sandbox_faults_set(organization=org, error_rate=0.5, added_latency_ms=10, timeout_rate=0.5)
    services.sandbox_storm_start(organization=org, seconds=60, retry_after=5)
    services.sandbox_faults_reset(organization=org)
    org.refresh_from_db()
    assert (org.error_rate, org.added_latency_ms, org.timeout_rate, org.storm_until) == (0.0, 0, 0.0, None)


def test_wrong_method_is_405(api):
    response = api.get("v2/Gift/Transaction")
    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_invalid_json_is_400(api, org):
    response = api.client.post(
        BASE + "v2/Gift/Transaction",
        data="{not json",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api.token}",
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["code"] == "INVALID_JSON"


def test_one_organisation_token_never_sees_the_other(api, other_api, org, other_org_and_token):
    other_org = other_org_and_token[0]
    assert (
        api.post("Contact", {"name": "Only Alpha", "referenceSource": "X", "referenceId": "1"}).status_code
        == 200
    )
    contact_id = api.post("Contact/Query", {}).json()["list"][0]["id"]
    assert other_api.get(f"Contact/{contact_id}").status_code == 404
    assert other_api.get("Contact/X/1").status_code == 404
    assert other_api.get("Contact/Find", referenceSource="X", referenceId="1").status_code == 404
    assert other_api.post("Contact/Query", {}).json() == {"list": [], "total": 0}
    assert other_api.put(f"Contact/{contact_id}", {"name": "Hijack"}).status_code == 404
    assert other_api.get("Organization/Current").json()["organizationId"] == other_org.pk
    assert counters(org)["requests_total"] == 2 and counters(other_org)["requests_total"] == 6


def test_sandbox_is_off_by_default_and_mounted_only_when_on(monkeypatch, settings):
    import importlib

    import config.settings
    import config.urls

    monkeypatch.delenv("SANDBOX_ENABLED", raising=False)
    try:
        reloaded = importlib.reload(config.settings)
        assert reloaded.SANDBOX_ENABLED is False
        assert "integrations.sandbox" not in reloaded.INSTALLED_APPS
        settings.SANDBOX_ENABLED = False
        assert not any(
            str(p.pattern) == "sandbox/virtuous/" for p in importlib.reload(config.urls).urlpatterns
        )
    finally:
        monkeypatch.undo()
        importlib.reload(config.settings)
        settings.SANDBOX_ENABLED = True
        importlib.reload(config.urls)
    assert any(str(p.pattern) == "sandbox/virtuous/" for p in config.urls.urlpatterns)


def test_sandbox_enabled_is_a_strict_boolean(monkeypatch):
    import importlib

    from django.core.exceptions import ImproperlyConfigured

    import config.settings

    monkeypatch.setenv("SANDBOX_ENABLED", "yes please")
    try:
        with pytest.raises(ImproperlyConfigured, match="SANDBOX_ENABLED"):
            importlib.reload(config.settings)
    finally:
        monkeypatch.undo()
        importlib.reload(config.settings)


def test_counters_reject_unknown_names(org):
    with pytest.raises(ValueError, match="Unknown sandbox counters"):
        limits.counters_add(organization_id=org.pk, nonsense=1)


def test_sandbox_imports_nothing_from_sync_or_the_virtuous_client():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[3] / "integrations" / "sandbox"
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if any(
            needle in path.read_text()
            for needle in (
                "from sync",
                "import sync",
                "integrations.virtuous",
                "integrations import virtuous",
            )
        )
    ]
    assert offenders == []
