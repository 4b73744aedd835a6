"""Tenant-scoped reads of connections."""

from __future__ import annotations

import functools
from uuid import UUID

from django.db import connections, router
from django.db.models import QuerySet

from integrations.common.rows import RowLoader, fixed_cursor
from integrations.models import Connection
from tenants.models import Credential, Tenant


def connection_list(*, tenant: Tenant) -> QuerySet[Connection]:
    return Connection.objects.filter(tenant=tenant)


def connection_get(*, tenant: Tenant, public_id: UUID | str) -> Connection:
    return connection_list(tenant=tenant).get(public_id=public_id)


def connection_for_webhook(*, token: UUID | str) -> Connection | None:
    """The active connection a webhook URL names, its tenant, and its webhook-secret ciphertexts,
    in one statement (the capture path's only read).

    The tenant's webhook secrets are joined in (one row each; a tenant has a handful) and the
    connection's own are kept by platform and scope; ``connection_secrets`` then decrypts them
    without another query. Active comes before pending, as for verification.

    The statement's text is built once per process from the models' fields (compiling the
    equivalent queryset was most of a webhook's CPU), and is prepared on PostgreSQL.
    """
    db = connections[router.db_for_read(Connection)]
    sql, connection_row, tenant_row = _webhook_lookup(db.alias)
    with fixed_cursor(db) as cursor:
        token_field = Connection._meta.get_field("webhook_token")
        cursor.execute(
            sql,
            [
                Credential.Purpose.WEBHOOK_SECRET.value,  # psycopg would bind an Enum by its name
                Credential.State.ACTIVE.value,
                Credential.State.PENDING.value,
                token_field.get_db_prep_value(token_field.to_python(token), db),
            ],
        )
        rows = cursor.fetchall()
    if not rows:
        return None
    width = connection_row.width
    connection = connection_row.build(db, rows[0][:width])
    connection.tenant = tenant_row.build(db, rows[0][width : width + tenant_row.width])
    platform, scope = connection.credential_platform, connection.credential_scope
    mine = sorted(
        (state, ciphertext)
        for *_, ciphertext, hook_platform, hook_scope, state in rows
        if ciphertext and hook_platform == platform and hook_scope == scope
    )  # "active" sorts before "pending"
    connection.webhook_ciphertexts = [ciphertext for _, ciphertext in mine]
    return connection


@functools.cache
def _webhook_lookup(alias: str) -> tuple[str, RowLoader, RowLoader]:
    db = connections[alias]
    qn = db.ops.quote_name
    connection_row = RowLoader(Connection, "c", db)
    tenant_row = RowLoader(Tenant, "t", db)
    c = {
        name: qn(Connection._meta.get_field(name).column) for name in ("tenant", "webhook_token", "is_active")
    }
    cr = {
        name: qn(Credential._meta.get_field(name).column)
        for name in ("tenant", "purpose", "ciphertext", "platform", "scope", "state")
    }
    sql = (
        f"SELECT {connection_row.select}, {tenant_row.select}, "
        f"cr.{cr['ciphertext']}, cr.{cr['platform']}, cr.{cr['scope']}, cr.{cr['state']} "
        f"FROM {qn(Connection._meta.db_table)} c "
        f"JOIN {qn(Tenant._meta.db_table)} t ON t.{qn(Tenant._meta.pk.column)} = c.{c['tenant']} "
        f"LEFT JOIN {qn(Credential._meta.db_table)} cr ON cr.{cr['tenant']} = c.{c['tenant']} "
        f"AND cr.{cr['purpose']} = %s AND cr.{cr['state']} IN (%s, %s) "
        f"WHERE c.{c['webhook_token']} = %s AND c.{c['is_active']}"
    )
    return sql, connection_row, tenant_row


def tenant_write_sources(*, tenant: Tenant) -> set[str]:
    """Every transactionSource/referenceSource we write for this tenant: how we recognise our echoes."""
    sources = set(
        connection_list(tenant=tenant).exclude(provider="virtuous").values_list("source_name", flat=True)
    )
    return {s for s in sources | {tenant.source_name} if s}


def credential_scope_check(*, tenant: Tenant, platform: str, purpose: str, scope: str) -> str:
    """Where a secret typed at a shell belongs: refuse a connection's secret stored without (or
    with the wrong) connection, since the receiver looks it up by connection and would never find
    it (every delivery then refused). Returns the connection's name for the confirmation line.

    ``settings.CREDENTIAL_SCOPE_CHECK`` names this function for the tenants room.
    """
    from integrations.registry import provider_get

    connections = list(connection_list(tenant=tenant))
    owners = [c for c in connections if c.credential_platform == platform]
    tenant_wide = [c for c in owners if c.credential_scope == ""]
    if not scope:
        if tenant_wide or not owners and platform == "virtuous":
            return "the tenant"
        listed = (
            "; ".join(f"{c.public_id} ({c})" for c in owners) or "none yet: create one with connection_create"
        )
        raise ValueError(
            f"A {platform} {purpose} belongs to one connection: add --scope with its id. "
            f"{tenant.slug}'s {platform} connections: {listed}."
        )
    match = next((c for c in owners if str(c.public_id) == scope), None)
    if match is not None and match.credential_scope == "":
        raise ValueError(f"A {platform} {purpose} is tenant-wide: leave out --scope.")
    if match is None:
        listed = ", ".join(str(c.public_id) for c in owners) or "none"
        raise ValueError(
            f"{scope!r} is not a {platform} connection of {tenant.slug} (its {platform} connections: {listed})."
        )
    purposes = provider_get(match.provider).secret_purposes
    if purpose not in purposes:
        raise ValueError(
            f"A {match.provider} connection takes these secrets: {', '.join(purposes)}; not {purpose}."
        )
    return str(match)


def credential_scope_choices(*, tenants) -> dict[int, list[tuple[str, str, str]]]:
    """Per tenant (by pk), the connections a secret can be scoped to: (scope, label, platform),
    the label "<provider> — <connection name>". Virtuous's secrets are tenant-wide, so it is not
    listed. ``settings.CREDENTIAL_SCOPES`` names this function for the tenants room."""
    from integrations.registry import provider_get

    found: dict[int, list[tuple[str, str, str]]] = {}
    rows = Connection.objects.filter(tenant__in=tenants).exclude(provider="virtuous")
    for connection in rows.order_by("provider", "name", "created_at"):
        spec = provider_get(connection.provider)
        name = connection.name or f"unnamed, added {connection.created_at:%d %b %Y}"
        found.setdefault(connection.tenant_id, []).append(
            (connection.credential_scope, f"{spec.label} — {name}", spec.credential_platform)
        )
    return found
