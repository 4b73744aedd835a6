"""Management commands, the admin (knobs, counters, batch button) and the demo setup."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from integrations.sandbox import services
from integrations.sandbox.models import SandboxCounters, SandboxGift, SandboxOrganization
from tests.integrations.sandbox.conftest import SandboxApi, contact_item, counters, gift_item


def _run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_org_create_prints_a_working_token_once(db, client):
    out = _run(
        "sandbox_org_create", "--name", "Hope Shelter", "--rate-limit", "100", "--window-seconds", "60"
    )
    token = re.search(r"Token \(shown once\): (\S+)", out).group(1)
    org = SandboxOrganization.objects.get()
    assert (org.name, org.rate_limit, org.window_seconds) == ("Hope Shelter (Sandbox)", 100, 60)
    assert token not in org.token_hash
    response = SandboxApi(client, token).get("Organization/Current")
    assert response.json()["organizationName"] == "Hope Shelter (Sandbox)"
    assert response["X-RateLimit-Limit"] == "100"


def test_faults_command_sets_and_resets_knobs(org):
    _run(
        "sandbox_faults", str(org.pk), "--error-rate", "0.25", "--error-statuses", "502,503",
        "--latency-ms", "40", "--timeout-rate", "0.1", "--timeout-seconds", "31",
        "--storm-seconds", "120", "--retry-after", "9",
    )  # fmt: skip
    org.refresh_from_db()
    assert (
        org.error_rate,
        org.error_statuses,
        org.added_latency_ms,
        org.timeout_rate,
        org.timeout_seconds,
    ) == (
        0.25,
        "502,503",
        40,
        0.1,
        31,
    )
    assert org.storm_until is not None and org.storm_retry_after == 9
    _run("sandbox_faults", org.name, "--reset")
    org.refresh_from_db()
    assert (org.error_rate, org.added_latency_ms, org.timeout_rate, org.storm_until) == (0.0, 0, 0.0, None)


@pytest.mark.parametrize("args", [["--error-rate", "1.5"], ["--error-statuses", "200"]])
def test_faults_command_rejects_bad_values(org, args):
    with pytest.raises(CommandError):
        _run("sandbox_faults", str(org.pk), *args)
    org.refresh_from_db()
    assert (org.error_rate, org.error_statuses) == (0.0, "500,502,503")


def test_unknown_org_is_a_command_error(db):
    with pytest.raises(CommandError, match="No sandbox organisation"):
        _run("sandbox_stats", "404")


def test_stats_and_run_batch_commands(api, org):
    api.post("Contact/Transaction", contact_item())
    api.post("v2/Gift/Transaction", gift_item())
    out = _run("sandbox_run_batch", "--org", str(org.pk))
    assert "contacts_created=1" in out and "gifts_created=1" in out
    stats = json.loads(_run("sandbox_stats", str(org.pk), "--json"))
    assert stats == counters(org)
    assert stats["gifts_created"] == 1 and stats["writes_total"] == 2
    assert "requests_total" in _run("sandbox_stats", str(org.pk))


def test_admin_shows_counters_and_runs_the_batch(client, superuser, api, org):
    api.post("Contact/Transaction", contact_item())
    api.post("v2/Gift/Transaction", gift_item())
    client.force_login(superuser)
    page = client.get(f"/admin/sandbox/sandboxorganization/{org.pk}/change/")
    assert page.status_code == 200
    assert b"transactions_received: <b>2</b>" in page.content
    changelist = client.get("/admin/sandbox/sandboxorganization/")
    assert b"Alpha Food Bank (Sandbox)" in changelist.content
    held = client.get("/admin/sandbox/sandboxtransaction/")
    assert held.status_code == 200 and b"ch_1" in held.content
    response = client.post(
        "/admin/sandbox/sandboxorganization/",
        {"action": "run_batch", "_selected_action": [org.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert SandboxGift.objects.filter(organization=org).count() == 1
    client.post(
        "/admin/sandbox/sandboxorganization/", {"action": "reset_counters", "_selected_action": [org.pk]}
    )
    assert set(SandboxCounters.objects.get(pk=org.pk).as_dict().values()) == {0}


def test_admin_edits_fault_knobs_without_touching_counters(client, superuser, org):
    SandboxCounters.objects.filter(pk=org.pk).update(requests_total=41)
    client.force_login(superuser)
    url = f"/admin/sandbox/sandboxorganization/{org.pk}/change/"
    data = {
        "name": org.name, "time_zone": org.time_zone, "rate_limit": 10, "window_seconds": 60,
        "error_rate": 0.5, "error_statuses": "503", "added_latency_ms": 5, "timeout_rate": 0,
        "timeout_seconds": 35, "error_after_rate": 0, "storm_until_0": "", "storm_until_1": "", "storm_retry_after": 60,
        "webhook_signature_header": "X-Virtuous-Signature", "webhook_signature_encoding": "base64",
        "webhook_payload_style": "envelope",
    }  # fmt: skip
    assert client.post(url, data).status_code == 302
    org.refresh_from_db()
    assert (org.rate_limit, org.error_rate, org.webhook_signature_encoding) == (10, 0.5, "base64")
    assert counters(org)["requests_total"] == 41


def test_admin_add_shows_the_token_once(client, superuser):
    client.force_login(superuser)
    response = client.post(
        "/admin/sandbox/sandboxorganization/add/",
        {"name": "Admin Made", "time_zone": "UTC", "rate_limit": 5000, "window_seconds": 3600},
        follow=True,
    )
    token = re.search(r"\(shown once\): (vsbx_[A-Za-z0-9_-]+)", response.content.decode()).group(1)
    org = SandboxOrganization.objects.get()
    assert org.name == "Admin Made (Sandbox)"
    assert services.sandbox_org_authenticate(token=token) == org
