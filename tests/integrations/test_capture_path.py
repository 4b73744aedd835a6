"""The capture path's reads: one statement for the connection and its secrets, cached decryption."""

import time

import pytest
from django.db import connection as db_connection
from django.db import transaction

from integrations.common.secrets import connection_secrets
from integrations.models import Connection, InboundEvent, RejectedDeliveryCount
from integrations.selectors import connection_for_webhook, reused_connection_check
from integrations.stripe import webhooks
from tenants import crypto
from tenants.models import Credential, Tenant
from tenants.services import credential_retire, credential_set
from tests.integrations.conftest import fixture_bytes

SECRET = "whsec_alpha_current_0001"
NEXT = "whsec_alpha_next_0002"


def _set_next(tenant, connection, *, activate: bool = False) -> None:
    """NEXT as the connection's pending secret beside its active one (a rotation under way), or
    with ``activate`` as its active one, retiring the other."""
    credential_set(
        tenant=tenant,
        platform="stripe",
        purpose="webhook_secret",
        secret=NEXT,
        scope=connection.credential_scope,
        activate=activate,
    )


def _signed(body: bytes, secret: str) -> dict[str, str]:
    return {"HTTP_STRIPE_SIGNATURE": webhooks.sign(body, secret, int(time.time()))}


def test_connection_and_its_secrets_come_in_one_statement(
    tenant, other_tenant, make_connection, django_assert_num_queries
):
    ours = make_connection(tenant, "stripe", secret=SECRET)
    make_connection(tenant, "stripe", secret="whsec_sibling_connection")  # same tenant, other scope
    make_connection(tenant, "donorbox", secret="donorbox-secret")  # same tenant, other platform
    outsider = make_connection(other_tenant, "stripe", secret="whsec_outsider")
    _set_next(tenant, ours)
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
    _set_next(tenant, connection, activate=True)  # SECRET retired: a new ciphertext, a new cache key
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


# --- Remembered connections: one statement a delivery, checked by the INSERT itself -------------


def _post(client, connection, body: bytes, secret: str, *, age: int = 0):
    headers = {"HTTP_STRIPE_SIGNATURE": webhooks.sign(body, secret, int(time.time()) - age)}
    url = f"/hooks/{connection.webhook_token}/"
    return client.post(url, data=body, content_type="application/json", **headers)


def _event(n: int) -> bytes:
    return fixture_bytes("stripe", "payment_intent.succeeded.json").replace(
        b'"evt_', f'"evt_{n}x'.encode(), 1
    )


@pytest.mark.django_db(transaction=True)
def test_a_webhook_to_a_url_seen_before_costs_one_statement(
    client, tenant, make_connection, django_assert_num_queries
):
    connection = make_connection(tenant, "stripe", secret=SECRET)
    assert _post(client, connection, _event(1), SECRET).status_code == 200
    # Counters and poll times change all day; they are not what decides a delivery.
    Connection.objects.filter(pk=connection.pk).update(consecutive_failures=3, last_error="timeout")
    with django_assert_num_queries(1):  # the INSERT, which checks the remembered connection
        assert _post(client, connection, _event(2), SECRET).status_code == 200
    with django_assert_num_queries(2):  # a repeat: the checked INSERT hits the dedupe key, then one more
        assert _post(client, connection, _event(2), SECRET).json()["status"] == "duplicate"
    statuses = list(InboundEvent.objects.order_by("id").values_list("status", flat=True))
    assert statuses == ["pending", "pending", "duplicate"]


def test_a_connection_switched_off_refuses_deliveries_at_once(client, tenant, make_connection):
    connection = make_connection(tenant, "stripe", secret=SECRET)
    assert _post(client, connection, _event(1), SECRET).status_code == 200
    Connection.objects.filter(pk=connection.pk).update(is_active=False)  # no save(): nothing is told
    assert _post(client, connection, _event(2), SECRET).status_code == 404
    assert InboundEvent.objects.count() == 1


def test_a_settings_change_takes_effect_at_once(client, tenant, make_connection):
    connection = make_connection(tenant, "stripe", secret=SECRET, settings={"tolerance_seconds": 600})
    assert _post(client, connection, _event(1), SECRET, age=300).status_code == 200
    Connection.objects.filter(pk=connection.pk).update(settings={"tolerance_seconds": 120})
    refused = _post(client, connection, _event(2), SECRET, age=300)
    assert refused.status_code == 400 and "120 s tolerance" in refused.json()["detail"]
    assert list(InboundEvent.objects.order_by("id").values_list("status", flat=True)) == [
        "pending",
        "rejected",
    ]


def test_a_new_pending_secret_is_accepted_at_once(client, tenant, make_connection):
    connection = make_connection(tenant, "stripe", secret=SECRET)
    assert _post(client, connection, _event(1), SECRET).status_code == 200
    _set_next(tenant, connection)
    assert _post(client, connection, _event(2), NEXT).status_code == 200
    assert _post(client, connection, _event(3), SECRET).status_code == 200  # still active too
    assert InboundEvent.objects.filter(status="pending").count() == 3
    assert not RejectedDeliveryCount.objects.exists()  # no refusal was counted on the way


def test_a_retired_secret_is_refused_at_once_and_recorded_once(client, tenant, make_connection):
    connection = make_connection(tenant, "stripe", secret=SECRET)
    assert _post(client, connection, _event(1), SECRET).status_code == 200
    secret = Credential.objects.get(tenant=tenant, platform="stripe", state="active")
    credential_retire(credential=secret)
    assert _post(client, connection, _event(2), SECRET).status_code == 400
    assert list(InboundEvent.objects.order_by("id").values_list("status", flat=True)) == [
        "pending",
        "rejected",
    ]
    assert RejectedDeliveryCount.objects.get().received == 1  # the stale pass counted nothing


def test_remembered_connections_never_cross_tenants(client, tenant, other_tenant, make_connection):
    ours = make_connection(tenant, "stripe", secret=SECRET)
    theirs = make_connection(other_tenant, "stripe", secret="whsec_outsider")
    assert _post(client, ours, _event(1), SECRET).status_code == 200
    assert _post(client, theirs, _event(1), "whsec_outsider").status_code == 200
    # Each URL keeps its own connection and secrets: the other tenant's secret opens neither.
    assert _post(client, ours, _event(2), "whsec_outsider").status_code == 400
    assert _post(client, theirs, _event(2), SECRET).status_code == 400
    assert set(InboundEvent.objects.filter(status="pending").values_list("tenant_id", "connection_id")) == {
        (tenant.pk, ours.pk),
        (other_tenant.pk, theirs.pk),
    }


@pytest.mark.django_db(transaction=True)
def test_with_the_cache_off_every_delivery_reads_its_connection(
    client, tenant, make_connection, settings, django_assert_num_queries
):
    settings.WEBHOOK_CONNECTION_CACHE_SIZE = 0
    connection = make_connection(tenant, "stripe", secret=SECRET)
    for n in (1, 2):
        with django_assert_num_queries(2):
            assert _post(client, connection, _event(n), SECRET).status_code == 200


def test_the_reuse_check_fails_on_what_decides_a_delivery_and_only_that(tenant, make_connection):
    connection = make_connection(tenant, "stripe", secret=SECRET)
    make_connection(tenant, "donorbox", secret="donorbox-secret")  # a sibling's rows change nothing

    def still_holds(remembered) -> bool:
        check, params = reused_connection_check(remembered, db_connection)
        with db_connection.cursor() as cursor:
            cursor.execute(f"SELECT 1 WHERE {check}", params)
            return cursor.fetchone() is not None

    def remembered():
        return connection_for_webhook(token=connection.webhook_token)

    before = remembered()
    Connection.objects.filter(pk=connection.pk).update(consecutive_failures=9, last_error="x")
    Tenant.objects.filter(pk=tenant.pk).update(name="Renamed")
    _set_next(tenant, connection)  # a new secret: a delivery signed with it is verified on a fresh read
    assert still_holds(before)
    changes = {
        "settings": lambda: Connection.objects.filter(pk=connection.pk).update(
            settings={"tolerance_seconds": 90}
        ),
        "switched off": lambda: Connection.objects.filter(pk=connection.pk).update(is_active=False),
        "tenant slug": lambda: Tenant.objects.filter(pk=tenant.pk).update(slug="alpha-2"),
        "secret retired": lambda: Credential.objects.filter(pk=before.webhook_secret_ids[0]).update(
            state="retired"
        ),
        "secret rewritten": lambda: Credential.objects.filter(pk=before.webhook_secret_ids[0]).update(
            ciphertext=crypto.encrypt("whsec_other")
        ),
    }
    for name, change in changes.items():
        with transaction.atomic():
            change()
            assert not still_holds(before), name
            transaction.set_rollback(True)
    assert still_holds(before)
