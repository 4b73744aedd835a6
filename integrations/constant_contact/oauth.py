"""Constant Contact OAuth2 tokens for one connection: a cached access token, a rotating refresh token.

Each refresh returns a new refresh token and invalidates the old one (spec section 3.1), so two
workers refreshing at once would spend it twice and the second gets ``invalid_grant``. A refresh
therefore runs inside ``transaction.atomic`` holding ``select_for_update`` on the connection's
active refresh-token Credential row; a second worker waits on that lock, then finds the new
access token already stored (in the shared ``integrations.common.oauth.TokenCache``) and uses it
without refreshing. The new refresh token is saved inside the same transaction, before the lock
is released.

Credentials (platform ``constant_contact``, scope = the connection's public id):
``oauth_refresh_token``, ``oauth_client_secret``, ``oauth_access_token`` (with ``expires_at``).
The client id is ``client_id`` in the connection settings.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations.common.http import HttpSession
from integrations.common.oauth import AccessToken, TokenCache
from integrations.common.secrets import connection_secret, connection_secret_store
from integrations.constant_contact.throttle import ApplicationThrottle
from integrations.registry import connection_settings
from tenants.models import Credential

TOKEN_URL = "https://authz.constantcontact.com/oauth2/default/v1/token"
# Refresh a little before expiry so a token never lapses between the check and the call.
EXPIRY_MARGIN = timedelta(minutes=5)
DEFAULT_LIFETIME_SECONDS = 3600


class OAuthError(Exception):
    """The tokens cannot be obtained; the poll run fails (the circuit breaker counts it)."""


class TokenStore:
    def __init__(self, connection: Any, *, session: HttpSession, throttle: ApplicationThrottle) -> None:
        self.connection = connection
        self.cache = TokenCache(connection, margin=EXPIRY_MARGIN)
        self.session = session
        self.throttle = throttle

    def access_token(self) -> str:
        """A usable access token, refreshing it when it is missing or about to expire."""
        return self.cache.fresh() or self.refresh(stale=None)

    def refresh(self, *, stale: str | None) -> str:
        """Spend the refresh token once, under the row lock; ``stale`` is a token the API refused.

        When another worker refreshed while this one waited, its new token is returned instead.
        """
        self.throttle.acquire()
        # Two rounds: on PostgreSQL a worker that waited on the lock sees the row it waited for
        # already retired (rotated) and matches nothing; the next query sees the new row.
        for _ in range(2):
            with transaction.atomic():
                locked = list(
                    Credential.objects.select_for_update()
                    .filter(
                        tenant=self.connection.tenant,
                        platform=self.connection.credential_platform,
                        purpose=Credential.Purpose.OAUTH_REFRESH_TOKEN,
                        scope=self.connection.credential_scope,
                        state=Credential.State.ACTIVE,
                    )
                    .values_list("pk", flat=True)
                )
                if not locked:
                    continue
                current = self.cache.fresh()
                if current and current != stale:
                    return current
                return self._exchange()
        raise OAuthError(
            "No Constant Contact refresh token is set: connect the account and store it as "
            "constant_contact oauth_refresh_token for this connection"
        )

    def _exchange(self) -> str:
        client_id = connection_settings(self.connection)["client_id"]
        client_secret = connection_secret(self.connection, Credential.Purpose.OAUTH_CLIENT_SECRET)
        refresh_token = connection_secret(self.connection, Credential.Purpose.OAUTH_REFRESH_TOKEN)
        if not client_id or not client_secret or not refresh_token:
            raise OAuthError(
                "Constant Contact needs client_id in the connection settings and the oauth_client_secret "
                "and oauth_refresh_token credentials"
            )
        response = self.session.post(
            TOKEN_URL,
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(client_id, client_secret),
            headers={"Accept": "application/json"},
        )
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if response.status_code != 200:
            if body.get("error") == "invalid_grant":
                raise OAuthError(
                    "Constant Contact refused the refresh token (invalid_grant: expired, revoked or already "
                    "used). Reconnect the account and store the new refresh token; polling stays paused until then."
                )
            raise OAuthError(
                f"Constant Contact token refresh failed: HTTP {response.status_code} {body.get('error', '')}"
            )
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise OAuthError("Constant Contact token response has no access_token")
        lifetime = body.get("expires_in")
        seconds = lifetime if isinstance(lifetime, int) and lifetime > 0 else DEFAULT_LIFETIME_SECONDS
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != refresh_token:
            connection_secret_store(self.connection, Credential.Purpose.OAUTH_REFRESH_TOKEN, rotated)
        return self.cache.store(AccessToken(access, timezone.now() + timedelta(seconds=seconds)))
