import io

import pytest
from django.core.management import CommandError, call_command

from tenants import selectors
from tenants.models import AuditEvent, Credential, Tenant


def _run(*args, stdin: str | None = None) -> str:
    out = io.StringIO()
    extra = {"stdin": io.StringIO(stdin)} if stdin is not None else {}
    call_command(*args, stdout=out, **extra)
    return out.getvalue()


@pytest.mark.django_db
def test_tenant_create_reads_token_from_stdin():
    out = _run(
        "tenant_create",
        "--slug",
        "gamma",
        "--name",
        "Gamma Shelter",
        "--virtuous-token",
        "--budget-per-hour",
        "1200",
        stdin="tok-from-stdin-7777\n",
    )
    tenant = Tenant.objects.get(slug="gamma")
    assert str(tenant.public_id) in out
    assert tenant.hourly_request_budget == 1200
    assert (
        selectors.credential_secret(tenant=tenant, platform="virtuous", purpose="api_token")
        == "tok-from-stdin-7777"
    )
    assert AuditEvent.objects.filter(tenant=tenant, action="tenant.created", via="cli").exists()


@pytest.mark.django_db
def test_tenant_create_refuses_a_token_on_argv():
    with pytest.raises(CommandError, match="Refusing a token on the command line"):
        _run(
            "tenant_create", "--slug", "gamma", "--name", "Gamma", "--virtuous-token", "tok-on-argv", stdin=""
        )
    assert not Tenant.objects.filter(slug="gamma").exists()


@pytest.mark.django_db
def test_tenant_create_rejects_duplicate_slug(tenant):
    with pytest.raises(CommandError, match="slug"):
        _run("tenant_create", "--slug", "alpha", "--name", "Again", stdin="")
    assert Tenant.objects.filter(slug="alpha").count() == 1


def test_tenant_list_shows_every_tenant(tenant, other_tenant):
    out = _run("tenant_list")
    assert "alpha" in out and "bravo" in out and str(tenant.public_id) in out


def _stripe(tenant) -> str:
    from integrations.services import connection_create

    return str(connection_create(tenant=tenant, provider="stripe").public_id)


def test_credential_set_reads_stdin_and_never_echoes_the_secret(tenant):
    scope = _stripe(tenant)
    out = _run(
        "credential_set",
        "alpha",
        "stripe",
        "webhook_secret",
        "--scope",
        scope,
        stdin="whsec_cli_secret_4242\n",
    )
    assert "whsec_cli_secret_4242" not in out and "4242" in out
    assert (
        selectors.credential_secret(tenant=tenant, platform="stripe", purpose="webhook_secret", scope=scope)
        == "whsec_cli_secret_4242"
    )


def test_credential_set_without_stdin_is_an_error(tenant):
    with pytest.raises(CommandError, match="No secret on standard input"):
        _run("credential_set", "alpha", "stripe", "webhook_secret", "--scope", _stripe(tenant), stdin="")
    assert not Credential.objects.filter(tenant=tenant, platform="stripe").exists()


def test_credential_set_unknown_tenant(db):
    with pytest.raises(CommandError, match="No tenant"):
        _run("credential_set", "nobody", "stripe", "webhook_secret", stdin="x")


def test_credentials_rotate_key_command(tenant, other_tenant):
    out = _run("credentials_rotate_key")
    assert "Re-encrypted 2 credential(s)" in out
