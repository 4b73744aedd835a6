"""Inbound Virtuous signature checks: hex or Base64, rotation, tampering, per-tenant settings."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from integrations.common.secrets import connection_secrets
from integrations.registry import provider_get
from integrations.types import WebhookRequest
from integrations.virtuous.services import virtuous_connection_get_or_create
from integrations.virtuous.webhooks import sign, verify_signature
from tenants import services
from tenants.models import Credential

BODY = b'{"event":"GiftCreate","gift":{"id":501,"amount":25.10}}'
SECRET = "whsec-current-0123456789abcdef0123456789"
OLD_SECRET = "whsec-previous-abcdef0123456789abcdef012"


def test_sign_is_hmac_sha256_of_the_raw_body():
    digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest()
    assert sign(BODY, SECRET) == digest.hex()
    assert sign(BODY, SECRET, "base64") == base64.b64encode(digest).decode()
    with pytest.raises(ValueError):
        sign(BODY, SECRET, "base32")


@pytest.mark.parametrize(
    ("header", "encoding", "valid"),
    [
        (sign(BODY, SECRET), "auto", True),
        (sign(BODY, SECRET, "base64"), "auto", True),
        (sign(BODY, SECRET).upper(), "auto", True),
        ("sha256=" + sign(BODY, SECRET), "auto", True),
        ("  " + sign(BODY, SECRET, "base64") + " ", "base64", True),
        (sign(BODY, SECRET), "hex", True),
        (sign(BODY, SECRET, "base64"), "hex", False),
        (sign(BODY, SECRET), "base64", False),
        (sign(BODY, "some-other-secret"), "auto", False),
        (sign(BODY, SECRET)[:-2], "auto", False),
        ("not a signature", "auto", False),
        ("", "auto", False),
        (None, "auto", False),
    ],
)
def test_verify_signature(header, encoding, valid):
    assert verify_signature(body=BODY, header_value=header, secrets=[SECRET], encoding=encoding) is valid


def test_tampered_body_fails():
    header = sign(BODY, SECRET)
    assert (
        verify_signature(body=BODY.replace(b"25.10", b"2510"), header_value=header, secrets=[SECRET]) is False
    )


def test_both_secrets_verify_during_a_rotation():
    secrets = [SECRET, OLD_SECRET]
    assert verify_signature(body=BODY, header_value=sign(BODY, OLD_SECRET), secrets=secrets) is True
    assert verify_signature(body=BODY, header_value=sign(BODY, SECRET, "base64"), secrets=secrets) is True
    assert verify_signature(body=BODY, header_value=sign(BODY, OLD_SECRET), secrets=[SECRET]) is False


def test_no_secrets_never_verifies():
    assert verify_signature(body=BODY, header_value=sign(BODY, ""), secrets=[]) is False
    assert verify_signature(body=BODY, header_value=sign(BODY, ""), secrets=[""]) is False


def test_unknown_encoding_setting_is_an_error():
    with pytest.raises(ValueError):
        verify_signature(body=BODY, header_value="x", secrets=[SECRET], encoding="base32")


def _set_secret(tenant, secret, *, activate=True):
    services.credential_set(
        tenant=tenant,
        platform=Credential.Platform.VIRTUOUS,
        purpose=Credential.Purpose.WEBHOOK_SECRET,
        secret=secret,
        activate=activate,
    )


def _delivery_verifies(*, tenant, body, headers) -> bool:
    """The receive view's check: the Virtuous provider's verify, with the connection's secrets."""
    connection = virtuous_connection_get_or_create(tenant=tenant)
    connection.tenant = tenant  # the tests change signature settings in memory
    request = WebhookRequest(body=body, headers=headers, content_type="application/json", query={})
    return provider_get("virtuous").verify(request, connection, connection_secrets(connection)).ok


def test_delivery_uses_the_tenants_header_encoding_and_secrets(tenant, other_tenant):
    # given: the old secret is active, the new one pending (mid-rotation); the outsider has its own
    _set_secret(tenant, OLD_SECRET)
    _set_secret(tenant, SECRET, activate=False)
    _set_secret(other_tenant, "whsec-bravo-only-secret-000000000000000")
    # then
    assert tenant.virtuous_signature_header == "X-Virtuous-Signature"
    assert tenant.virtuous_signature_encoding == "auto"
    assert _delivery_verifies(tenant=tenant, body=BODY, headers={"X-Virtuous-Signature": sign(BODY, SECRET)})
    assert _delivery_verifies(
        tenant=tenant, body=BODY, headers={"X-Virtuous-Signature": sign(BODY, OLD_SECRET)}
    )
    assert not _delivery_verifies(tenant=tenant, body=BODY, headers={})
    assert not _delivery_verifies(
        tenant=other_tenant, body=BODY, headers={"X-Virtuous-Signature": sign(BODY, SECRET)}
    )


def test_delivery_honours_a_custom_header_and_strict_encoding(tenant):
    _set_secret(tenant, SECRET)
    tenant.virtuous_signature_header = "X-Signature"
    tenant.virtuous_signature_encoding = "base64"
    assert _delivery_verifies(tenant=tenant, body=BODY, headers={"X-Signature": sign(BODY, SECRET, "base64")})
    assert not _delivery_verifies(tenant=tenant, body=BODY, headers={"X-Signature": sign(BODY, SECRET)})
    assert not _delivery_verifies(
        tenant=tenant, body=BODY, headers={"X-Virtuous-Signature": sign(BODY, SECRET, "base64")}
    )


def test_admin_edits_the_signature_settings_in_the_virtuous_fieldset(superuser, tenant):
    from django.test import Client
    from django.urls import reverse

    browser = Client()
    browser.force_login(superuser)
    html = browser.get(reverse("admin:tenants_tenant_change", args=[tenant.pk])).content.decode()
    assert 'name="virtuous_signature_header" value="X-Virtuous-Signature"' in html
    assert '<option value="auto" selected>Hex or Base64</option>' in html
