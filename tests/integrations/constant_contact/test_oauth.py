import threading
import time
from datetime import timedelta

import pytest
import responses
from django.db import connection as db_connection
from django.utils import timezone

from integrations.common.http import http_session
from integrations.constant_contact.oauth import OAuthError, TokenStore
from integrations.constant_contact.throttle import ApplicationThrottle
from integrations.models import Connection
from sync.inbound.polling import connection_poll
from tenants import selectors
from tenants.models import Credential

from .conftest import (
    CONTACTS_URL,
    LISTS_URL,
    TOKEN_URL,
    FakeContacts,
    FakeTokenEndpoint,
    lists_body,
    store_tokens,
)

postgres_only = pytest.mark.skipif(
    db_connection.vendor != "postgresql",
    reason="SQLite has no row locks: select_for_update is a no-op, so the race cannot be shown",
)


def _store(connection):
    return TokenStore(connection, session=http_session(), throttle=ApplicationThrottle())


def _secret(connection, purpose):
    return selectors.credential_secret(
        tenant=connection.tenant,
        platform="constant_contact",
        purpose=purpose,
        scope=connection.credential_scope,
    )


def _expire_access_token(connection):
    Credential.objects.filter(
        scope=connection.credential_scope, purpose="oauth_access_token", state="active"
    ).update(expires_at=timezone.now() + timedelta(minutes=2))


def test_a_fresh_access_token_is_used_without_calling_the_token_endpoint(cc_connection):
    with responses.RequestsMock():  # any HTTP call would fail the test
        assert _store(cc_connection).access_token() == "at-1"


def test_an_expiring_token_is_refreshed_and_the_rotated_refresh_token_stored(cc_connection):
    _expire_access_token(cc_connection)
    endpoint = FakeTokenEndpoint()
    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, TOKEN_URL, callback=endpoint)
        assert _store(cc_connection).access_token() == "at-new-1"
    assert endpoint.spent == ["rt-1"]
    assert _secret(cc_connection, "oauth_refresh_token") == "rt-2"
    assert _secret(cc_connection, "oauth_access_token") == "at-new-1"
    access = Credential.objects.get(
        scope=cc_connection.credential_scope, purpose="oauth_access_token", state="active"
    )
    assert access.expires_at > timezone.now() + timedelta(hours=23)
    assert (
        Credential.objects.filter(
            scope=cc_connection.credential_scope, purpose="oauth_refresh_token", state="retired"
        ).count()
        == 1
    )


def test_a_401_refreshes_once_and_retries_with_the_new_token(cc_connection):
    endpoint = FakeTokenEndpoint()
    fake = FakeContacts([])
    answers = iter([(401, {}, "{}")])

    def lists(request):
        return next(answers, (200, {}, lists_body()))

    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, TOKEN_URL, callback=endpoint)
        mock.add_callback(responses.GET, LISTS_URL, callback=lists)
        mock.add_callback(responses.GET, CONTACTS_URL, callback=fake)
        connection_poll(connection=cc_connection)
        auth = [c.request.headers["Authorization"] for c in mock.calls if c.request.url.startswith(LISTS_URL)]
    assert auth == ["Bearer at-1", "Bearer at-new-1"]
    assert endpoint.spent == ["rt-1"]


def test_invalid_grant_fails_the_run_clearly_and_trips_the_circuit_breaker(cc_connection, settings):
    settings.POLL_FAILURES_BEFORE_PAUSE = 3
    _expire_access_token(cc_connection)
    endpoint = FakeTokenEndpoint(current="rt-someone-else-got")
    for _ in range(3):
        cc_connection.refresh_from_db()
        with responses.RequestsMock() as mock, pytest.raises(OAuthError, match="invalid_grant"):
            mock.add_callback(responses.POST, TOKEN_URL, callback=endpoint)
            connection_poll(connection=cc_connection)
    assert endpoint.spent == ["rt-1"] * 3  # one attempt per run, never a retry loop
    cc_connection.refresh_from_db()
    assert cc_connection.paused_until is not None and not cc_connection.poll_due()
    assert "Reconnect the account" in cc_connection.last_error
    assert _secret(cc_connection, "oauth_refresh_token") == "rt-1"  # nothing overwritten


def test_missing_credentials_are_a_clear_error(cc_connection):
    Credential.objects.filter(scope=cc_connection.credential_scope, purpose="oauth_refresh_token").delete()
    _expire_access_token(cc_connection)
    with pytest.raises(OAuthError, match="No Constant Contact refresh token"):
        _store(cc_connection).access_token()


def test_tokens_are_per_connection(cc_connection, other_tenant, make_connection):
    other = make_connection(
        other_tenant, "constant_contact", capture_mode="polling", settings={"client_id": "x"}
    )
    store_tokens(other_tenant, other, refresh="rt-bravo", access="at-bravo")
    assert _store(other).access_token() == "at-bravo"
    assert _store(cc_connection).access_token() == "at-1"


@postgres_only
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_refreshing_at_once_spend_the_refresh_token_once(tenant, make_connection):
    connection = make_connection(
        tenant, "constant_contact", capture_mode="polling", settings={"client_id": "cid"}
    )
    store_tokens(tenant, connection, access=None)
    endpoint = FakeTokenEndpoint()

    def slow_endpoint(request):
        time.sleep(0.3)  # hold the lock long enough for the other worker to queue on it
        return endpoint(request)

    barrier = threading.Barrier(2)
    tokens: list[str] = []
    errors: list[Exception] = []

    def worker() -> None:
        try:
            store = _store(Connection.objects.select_related("tenant").get(pk=connection.pk))
            barrier.wait()
            tokens.append(store.access_token())
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            db_connection.close()

    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, TOKEN_URL, callback=slow_endpoint)
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert endpoint.spent == ["rt-1"]
    assert tokens == ["at-new-1", "at-new-1"]
    assert _secret(connection, "oauth_refresh_token") == "rt-2"
