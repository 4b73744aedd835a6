"""No secret set in the fixtures ever shows up in logs, error records, alerts, admin pages,
DEBUG exception pages or dead letters, even when Virtuous echoes the token back in an error."""

from __future__ import annotations

import logging

import pytest
import responses
from django.contrib import admin
from django.core import mail
from django.test import override_settings
from django.urls import NoReverseMatch, reverse

from integrations.models import Connection
from integrations.registry import provider_get
from integrations.services import connection_create
from sync.models import Alert, Attempt, DeadLetter, OutboundItem
from sync.outbound.drain import outbound_drain
from tenants.services import SYSTEM, credential_set, tenant_update, tenant_virtuous_url_change
from tests.conftest import OTHER_VIRTUOUS_TOKEN, VIRTUOUS_TOKEN
from tests.sync.conftest import enqueue_gifts

BASE = "https://virtuous.test/api-root"
SECRETS = {
    ("donorbox", "webhook_secret"): "dbx_whsec_LEAKCHECK_0001",
    ("stripe", "webhook_secret"): "whsec_LEAKCHECK_stripe_0002",
    ("stripe", "api_token"): "rk_live_LEAKCHECK_stripe_0003",
    ("mailchimp", "api_token"): "mc_LEAKCHECK_apikey_0004-us21",
    ("mailchimp", "webhook_secret"): "mcpathsecretLEAKCHECK0005",
    ("constant_contact", "oauth_client_secret"): "cc_client_LEAKCHECK_0006",
    ("constant_contact", "oauth_access_token"): "cc_access_LEAKCHECK_0007",
    ("constant_contact", "oauth_refresh_token"): "cc_refresh_LEAKCHECK_0008",
    ("gofundme_pro", "webhook_secret"): "whsec_LEAKCHECK_gfm_0009",
    ("auction", "webhook_secret"): "auction_LEAKCHECK_0010",
}
EVERY_SECRET = [VIRTUOUS_TOKEN, OTHER_VIRTUOUS_TOKEN, *SECRETS.values()]


def _leaks(text: str) -> list[str]:
    return [s for s in EVERY_SECRET if s in text]


@pytest.fixture
def secrets_everywhere(tenant, other_tenant):
    """Every secret type set: the Virtuous tokens (conftest) and a connection per provider."""
    tenant_virtuous_url_change(tenant=tenant, base_url=BASE, api_token=VIRTUOUS_TOKEN, actor=SYSTEM)
    tenant_update(tenant=tenant, actor=SYSTEM, changes={"retry_max_attempts": 1})
    for provider in sorted({p for p, _ in SECRETS}):
        connection = connection_create(
            tenant=tenant, provider=provider, capture_mode=provider_get(provider).capture_modes[-1]
        )
        for (p, purpose), value in SECRETS.items():
            if p == provider:
                credential_set(
                    tenant=tenant,
                    platform=p,
                    purpose=purpose,
                    secret=value,
                    scope=connection.credential_scope,
                )
    return tenant


def _echo(request):
    # A hostile or chatty server: the error repeats the credentials it was sent.
    auth = request.headers.get("Authorization", "")
    return 500, {}, f'{{"message": "Server exploded handling {auth}", "modelState": {{"token": ["{auth}"]}}}}'


@responses.activate
def test_errors_with_the_token_in_play_leak_nothing(secrets_everywhere, caplog):
    tenant = secrets_everywhere
    caplog.set_level(logging.DEBUG)
    responses.add_callback(responses.POST, f"{BASE}/api/v2/Gift/Transactions", callback=_echo)
    enqueue_gifts(tenant, 3)

    outbound_drain(tenant=tenant, max_budget_wait=0.0)  # a 500 echoing the token: dead letters
    responses.replace(
        responses.POST, f"{BASE}/api/v2/Gift/Transactions", status=401, body=f"bad token {VIRTUOUS_TOKEN}"
    )
    OutboundItem.objects.filter(tenant=tenant).update(state="pending", attempts=0)
    outbound_drain(tenant=tenant, max_budget_wait=0.0)  # a 401 echoing it: paused, alerted

    assert DeadLetter.objects.filter(tenant=tenant).exists() and Alert.objects.filter(tenant=tenant).exists()
    tenant.refresh_from_db()
    stored = [
        caplog.text,
        tenant.paused_reason,
        *[repr(v) for v in DeadLetter.objects.values_list("original_payload", "last_error", "error_details")],
        *[repr(v) for v in OutboundItem.objects.values_list("payload", "last_error", "note")],
        *[repr(v) for v in Attempt.objects.values()],
        *[repr(v) for v in Alert.objects.values("subject", "body", "delivery_error")],
        *[f"{m.subject}\n{m.body}" for m in mail.outbox],
    ]
    assert _leaks("\n".join(stored)) == []


def test_no_admin_page_renders_a_secret(client, superuser, secrets_everywhere):
    client.force_login(superuser)
    pages = [reverse("admin:index")]
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        pages.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        first = model_admin.get_queryset(type("R", (), {"user": superuser})()).first()
        if first is not None:
            name = f"admin:{opts.app_label}_{opts.model_name}_change"
            try:
                pages.append(reverse(name, args=[first.pk]))
            except NoReverseMatch:  # admins that address rows by public id
                pages.append(reverse(name, args=[first.public_id]))
    leaked = {}
    for page in pages:
        response = client.get(page)
        assert response.status_code in (200, 302), page
        if found := _leaks(response.content.decode()):
            leaked[page] = found
    assert leaked == {}
    assert len(pages) > 20


def test_debug_exception_pages_hide_secrets(client, secrets_everywhere, monkeypatch):
    connection = Connection.objects.get(tenant=secrets_everywhere, provider="donorbox")
    spec = provider_get("donorbox")

    def exploding_verify(request, conn, secrets):
        signing_key = secrets[0]  # a local holding a secret, as real code might
        raise RuntimeError(f"verifier bug near {len(signing_key)} chars")

    monkeypatch.setattr(type(spec), "verify", property(lambda self: exploding_verify), raising=False)
    client.raise_request_exception = False
    with override_settings(DEBUG=True):
        response = client.post(
            reverse("integrations:receive", args=[connection.webhook_token]),
            data=b"{}",
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {VIRTUOUS_TOKEN}",
        )
    assert response.status_code == 500
    page = response.content.decode()
    assert "verifier bug" in page  # it really is the technical 500 page
    assert _leaks(page) == []
