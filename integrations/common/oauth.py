"""The OAuth access-token cache every OAuth provider uses: one token per connection, kept as the
connection's ``oauth_access_token`` credential with its ``expires_at``.

A cached token counts only while it has more than ``margin`` left, so it never lapses between the
check and the call. How a new token is obtained (client credentials, a rotating refresh token)
stays with the provider; this cache only remembers the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from integrations.common.secrets import connection_secret, connection_secret_expiry, connection_secret_store
from tenants.models import Credential

ACCESS_TOKEN = Credential.Purpose.OAUTH_ACCESS_TOKEN


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_at: datetime


class TokenCache:
    """The access token of one connection, cached across runs and workers."""

    def __init__(self, connection: Any, *, margin: timedelta) -> None:
        self.connection = connection
        self.margin = margin

    def fresh(self) -> str | None:
        """The stored access token while it is still good for longer than the margin, else None."""
        expires_at = connection_secret_expiry(self.connection, ACCESS_TOKEN)
        if expires_at is None or expires_at <= timezone.now() + self.margin:
            return None
        return connection_secret(self.connection, ACCESS_TOKEN)

    def store(self, token: AccessToken) -> str:
        """Remember a newly issued token (retiring the previous one); returns its value."""
        connection_secret_store(self.connection, ACCESS_TOKEN, token.value, expires_at=token.expires_at)
        return token.value
