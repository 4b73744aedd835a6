"""The one way a provider (or the sync room) reads and stores a connection's secrets.

A connection's credentials are the tenant's credentials of the connection's platform, narrowed to
the connection by its scope (its public id; tenant-wide for Virtuous). ``connection`` is any object
with ``tenant``, ``credential_platform`` and ``credential_scope`` (``integrations.models.Connection``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tenants import crypto, selectors
from tenants.models import Credential
from tenants.services import SYSTEM, Actor, credential_set


def _where(connection: Any) -> dict[str, Any]:
    return {
        "tenant": connection.tenant,
        "platform": connection.credential_platform,
        "scope": connection.credential_scope,
    }


def connection_secret(connection: Any, purpose: str) -> str | None:
    """The connection's active secret for ``purpose``, decrypted; None when none is set."""
    return selectors.credential_secret(purpose=purpose, **_where(connection))


def connection_secrets(connection: Any, purpose: str = Credential.Purpose.WEBHOOK_SECRET) -> list[str]:
    """Every secret a signature may be made with during a rotation: active first, then pending.

    A connection read by ``connection_for_webhook`` carries its webhook ciphertexts already, so
    the capture path decrypts them (cached per ciphertext) without another query.
    """
    preloaded = getattr(connection, "webhook_ciphertexts", None)
    if preloaded is not None and purpose == Credential.Purpose.WEBHOOK_SECRET:
        return [crypto.decrypt_cached(ciphertext) for ciphertext in preloaded]
    return selectors.credential_secrets_for_verification(purpose=purpose, **_where(connection))


def connection_secret_expiry(connection: Any, purpose: str) -> datetime | None:
    """When the connection's active secret for ``purpose`` expires (OAuth access tokens)."""
    return (
        selectors.credential_list(tenant=connection.tenant)
        .filter(
            platform=connection.credential_platform,
            purpose=purpose,
            scope=connection.credential_scope,
            state=Credential.State.ACTIVE,
        )
        .values_list("expires_at", flat=True)
        .first()
    )


def connection_secret_store(
    connection: Any, purpose: str, secret: str, *, expires_at: datetime | None = None, actor: Actor = SYSTEM
) -> Credential:
    """Store (and activate) a new secret for the connection, retiring the one it replaces."""
    return credential_set(
        purpose=purpose, secret=secret, expires_at=expires_at, actor=actor, **_where(connection)
    )


def connection_secret_purposes(connection: Any) -> set[str]:
    """The purposes the connection has an active secret for (never the values)."""
    return set(
        selectors.credential_list(tenant=connection.tenant)
        .filter(
            platform=connection.credential_platform,
            scope=connection.credential_scope,
            state=Credential.State.ACTIVE,
        )
        .values_list("purpose", flat=True)
    )
