"""Scripting an onboarding: every console setting has a command, and the commands refuse what
would silently not work (a connection's secret stored without its connection)."""

import io
import shlex

import pytest
from django.core.management import CommandError, call_command

from integrations.services import connection_create
from tenants import selectors
from tenants.models import AuditEvent, Credential


def _run(*args, stdin: str | None = None) -> str:
    out = io.StringIO()
    kwargs = {"stdin": io.StringIO(stdin)} if stdin is not None else {}
    call_command(*args, stdout=out, **kwargs)
    return out.getvalue()


def test_tenant_set_changes_the_rollout_flags_like_the_console_and_audits_them(tenant, other_tenant):
    out = _run("tenant_set", "alpha", "inbound_mode=observe", "batching_enabled=false", "batch_size=50")
    assert "Updated batch_size, batching_enabled, inbound_mode of alpha." in out
    tenant.refresh_from_db()
    other_tenant.refresh_from_db()
    assert (tenant.inbound_mode, tenant.batching_enabled, tenant.batch_size) == ("observe", False, 50)
    assert (other_tenant.inbound_mode, other_tenant.batching_enabled) == ("off", True)
    event = AuditEvent.objects.get(tenant=tenant, action="tenant.updated")
    assert event.details["inbound_mode"] == {"old": "off", "new": "observe"}


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("inbound_mode=sideways", "inbound_mode"),
        ("batching_enabled=maybe", "expected true or false"),
        ("virtuous_base_url=https://evil.example", "one of these keys"),
        ("status=paused", "one of these keys"),
        ("nonsense", "KEY=VALUE"),
    ],
)
def test_tenant_set_refuses_bad_values_and_keys_with_their_own_commands(tenant, pair, message):
    with pytest.raises(CommandError, match=message):
        _run("tenant_set", "alpha", pair)
    tenant.refresh_from_db()
    assert tenant.inbound_mode == "off" and not AuditEvent.objects.filter(action="tenant.updated").exists()


def test_credential_set_refuses_a_connection_secret_without_its_connection(tenant, other_tenant):
    mine = connection_create(tenant=tenant, provider="donorbox", name="Main")
    theirs = connection_create(tenant=other_tenant, provider="donorbox")
    with pytest.raises(CommandError, match=f"add --scope with its id.*{mine.public_id}"):
        _run("credential_set", "alpha", "donorbox", "webhook_secret", stdin="s3cret")
    with pytest.raises(CommandError, match="is not a donorbox connection of alpha"):
        _run(
            "credential_set",
            "alpha",
            "donorbox",
            "webhook_secret",
            "--scope",
            str(theirs.public_id),
            stdin="x",
        )
    with pytest.raises(CommandError, match="takes these secrets: webhook_secret, api_token"):
        _run(
            "credential_set",
            "alpha",
            "donorbox",
            "oauth_client_secret",
            "--scope",
            str(mine.public_id),
            stdin="x",
        )
    assert not Credential.objects.filter(platform="donorbox").exists()
    out = _run(
        "credential_set",
        "alpha",
        "donorbox",
        "webhook_secret",
        "--scope",
        str(mine.public_id),
        stdin="s3cret",
    )
    assert "for alpha/donorbox Main" in out
    assert (
        selectors.credential_secret(
            tenant=tenant, platform="donorbox", purpose="webhook_secret", scope=str(mine.public_id)
        )
        == "s3cret"
    )


def test_the_virtuous_key_stays_tenant_wide(tenant):
    out = _run("credential_set", "alpha", "virtuous", "api_token", stdin="new-virtuous-key")
    assert "for the tenant" in out


def test_connection_create_prints_lines_that_paste_as_they_are(tenant, settings):
    settings.PUBLIC_BASE_URL = "https://giftline.example.org"
    out = _run("connection_create", "alpha", "stripe", "--capture-mode", "hybrid")
    commands = [line for line in out.splitlines() if line.startswith("python manage.py credential_set")]
    assert len(commands) == 2  # webhook_secret for webhooks, api_token for polling
    for line in commands:
        argv = shlex.split(line)[2:]
        with pytest.raises(CommandError, match="No secret on standard input"):
            _run(*argv, stdin="")  # it parses and finds its connection; only the secret is missing
    assert "TENANT" not in out and "CONNECTION_ID" not in out
    assert "credential_set alpha stripe webhook_secret --scope" in out
