"""The capture path's reads: one statement for the connection and its secrets, cached decryption."""

import time

import pytest

from integrations.common.secrets import connection_secrets
from integrations.models import InboundEvent
from integrations.selectors import connection_for_webhook
from integrations.stripe import webhooks
from tenants import crypto
from tenants.services import credential_set
from tests.integrations.conftest import fixture_bytes

SECRET = "whsec_alpha_current_0001"
NEXT = "whsec_alpha_next_0002"


def _signed(body: bytes, secret: str) -> dict[str, str]:
    return {"HTTP_STRIPE_SIGNATURE": webhooks.sign(body, secret, int(time.time()))}


def test_connection_and_its_secrets_come_in_one_statement(
    tenant, other_tenant, make_connection, django_assert_num_queries
):
    ours = make_connection(tenant, "stripe", secret=SECRET)
    make_connection(tenant, "stripe", secret="whsec_sibling_connection")  # same tenant, other scope
    make_connection(tenant, "donorbox", secret="donorbox-secret")  # same tenant, other platform
    outsider = make_connection(other_tenant, "stripe", secret="whsec_outsider")
    credential_set(
        tenant=tenant,
        platform="stripe",
        purpose="webhook_secret",
        secret=NEXT,
        scope=ours.credential_scope,
        activate=False,
    )
    with django_assert_num_queries(1):
        found = connection_for_webhook(token=ours.webhook_token)
        assert found.tenant.slug == "alpha"
        assert connection_secrets(found) == [SECRET, NEXT]  # active first, then pending
    assert connection_secrets(connection_for_webhook(token=outsider.webhook_token)) == ["whsec_outsider"]


def test_unknown_or_inactive_webhook_urls_find_nothing(tenant, make_connection):
    connection = make_connection(tenant, "stripe", secret=SECRET)
    connection.is_active = False
    connection.save()
    assert connection_for_webhook(token=connection.webhook_token) is None
    assert connection_for_webhook(token="00000000-0000-4000-8000-000000000000") is None


def test_connection_without_secret_has_none(tenant, make_connection):
    connection = make_connection(tenant, "stripe")
    assert connection_secrets(connection_for_webhook(token=connection.webhook_token)) == []


@pytest.mark.django_db(transaction=True)
def test_a_webhook_costs_one_read_and_one_insert(client, tenant, make_connection, django_assert_num_queries):
    connection = make_connection(tenant, "stripe", secret=SECRET)
    body = fixture_bytes("stripe", "payment_intent.succeeded.json")
    url = f"/hooks/{connection.webhook_token}/"
    with django_assert_num_queries(2):  # the connection with its secrets; the autocommitted INSERT
        response = client.post(url, data=body, content_type="application/json", **_signed(body, SECRET))
    assert response.status_code == 200
    assert InboundEvent.objects.get().status == "pending"


def test_rotation_takes_effect_at_once_despite_the_cache(client, tenant, make_connection):
    connection = make_connection(tenant, "stripe", secret=SECRET)
    url = f"/hooks/{connection.webhook_token}/"
    first = fixture_bytes("stripe", "payment_intent.succeeded.json")
    assert (
        client.post(url, data=first, content_type="application/json", **_signed(first, SECRET)).status_code
        == 200
    )
    credential_set(
        tenant=tenant,
        platform="stripe",
        purpose="webhook_secret",
        secret=NEXT,
        scope=connection.credential_scope,
    )  # activates NEXT, retires SECRET: a new ciphertext, so a new cache key
    second = fixture_bytes("stripe", "charge.refunded.json")
    old = client.post(url, data=second, content_type="application/json", **_signed(second, SECRET))
    assert old.status_code == 400
    new = client.post(url, data=second, content_type="application/json", **_signed(second, NEXT))
    assert new.status_code == 200
    assert list(InboundEvent.objects.order_by("id").values_list("status", flat=True)) == [
        "pending",
        "rejected",
        "pending",
    ]


def test_cached_decryption_is_keyed_by_ciphertext():
    a, b = crypto.encrypt("one"), crypto.encrypt("two")
    assert (crypto.decrypt_cached(a), crypto.decrypt_cached(b), crypto.decrypt_cached(a)) == (
        "one",
        "two",
        "one",
    )
    with pytest.raises(crypto.CredentialDecryptError):
        crypto.decrypt_cached("not-a-token")
