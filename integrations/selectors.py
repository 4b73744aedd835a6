"""Tenant-scoped reads of connections."""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

from integrations.common.rows import RowLoader, fixed_cursor
from integrations.models import Connection
from tenants.models import Credential, Tenant


def connection_list(*, tenant: Tenant) -> QuerySet[Connection]:
    return Connection.objects.filter(tenant=tenant)


def connection_get(*, tenant: Tenant, public_id: UUID | str) -> Connection:
    return connection_list(tenant=tenant).get(public_id=public_id)


def connection_for_webhook(*, token: UUID | str, reuse: bool = False) -> Connection | None:
    """The active connection a webhook URL names, its tenant, and its webhook-secret ciphertexts,
    in one statement (the capture path's only read).

    The tenant's webhook secrets are joined in (one row each; a tenant has a handful) and the
    connection's own are kept by platform and scope; ``connection_secrets`` then decrypts them
    without another query. Active comes before pending, as for verification.

    With ``reuse``, a copy of the connection this process read last for the token is returned
    without a query, marked ``capture_reused``: the INSERT that stores a delivery for it also
    checks, in the same statement, that the database still holds what capture read
    (``reused_connection_check``); ``inbound_event_receive`` raises ``ConnectionChanged`` when it
    does not, and the caller reads again. Every read refreshes what is remembered.
    ``WEBHOOK_CONNECTION_CACHE_SIZE`` 0 switches reuse off.

    The statement's text is built once per process from the models' fields (compiling the
    equivalent queryset was most of a webhook's CPU), and is prepared on PostgreSQL.
    """
    key = str(token)
    if reuse:
        remembered = _remembered.get(key)
        if remembered is not None:
            connection = copy.copy(remembered)  # per request: capture may set attributes on it
            connection.capture_reused = True
            return connection
    connection = _connection_read(token)
    _remember(key, connection)
    return connection


def _connection_read(token: UUID | str) -> Connection | None:
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
        (state, pk, ciphertext)
        for *_, pk, ciphertext, hook_platform, hook_scope, state in rows
        if ciphertext and hook_platform == platform and hook_scope == scope
    )  # "active" sorts before "pending"
    connection.webhook_ciphertexts = [ciphertext for _, _, ciphertext in mine]
    connection.webhook_secret_ids = [pk for _, pk, _ in mine]
    return connection


# token -> the connection last read for it, in this process (oldest first, for eviction).
_remembered: dict[str, Connection] = {}
_remembered_lock = threading.Lock()


def _remember(key: str, connection: Connection | None) -> None:
    with _remembered_lock:
        _remembered.pop(key, None)
        if connection is None or settings.WEBHOOK_CONNECTION_CACHE_SIZE <= 0:
            return
        while len(_remembered) >= settings.WEBHOOK_CONNECTION_CACHE_SIZE:
            del _remembered[next(iter(_remembered))]
        reused_connection_check(connection, connections[connection._state.db])  # once, not per delivery
        _remembered[key] = connection


# What a delivery's capture reads from its connection and tenant; a remembered connection is
# used only while the database holds the same values. Counters, poll times and the like change
# all day and decide nothing here.
_CHECKED_CONNECTION_FIELDS = ("id", "webhook_token", "tenant", "provider", "settings", "public_id")


def reused_connection_check(connection: Connection, db: BaseDatabaseWrapper) -> tuple[str, list[Any]]:
    """An SQL condition, and its parameters, that holds while the database still decides a
    delivery as ``connection`` (remembered from an earlier read) would: the connection is active
    with the same URL, tenant, provider, settings and public id, the tenant has the same slug, and
    each secret it holds is still one of the connection's active or pending webhook secrets, with
    the same ciphertext. A secret added since needs no check: a delivery signed with it fails
    against the remembered ones and is verified again on a fresh read.

    Plain equalities on rows found by primary key: a digest of the same values, or an aggregate
    over the secrets, cost PostgreSQL several times as much per delivery. The result is kept on
    the connection (and so on every copy of a remembered one).
    """
    kept = connection.__dict__.get("_reuse_check")
    if kept is not None and kept[0] == db.alias:
        return kept[1], kept[2]
    sql = _reuse_check_sql(db.alias, len(connection.webhook_secret_ids))
    fields = Connection._meta
    params = [
        fields.get_field(name).get_db_prep_value(getattr(connection, fields.get_field(name).attname), db)
        for name in _CHECKED_CONNECTION_FIELDS
    ]
    params.append(connection.tenant.slug)
    for pk, ciphertext in zip(connection.webhook_secret_ids, connection.webhook_ciphertexts, strict=True):
        params += [
            pk,
            connection.tenant_id,
            connection.credential_platform,
            connection.credential_scope,
            ciphertext,
        ]
    connection._reuse_check = (db.alias, sql, params)
    return sql, params


@functools.cache
def _reuse_check_sql(alias: str, secrets: int) -> str:
    db = connections[alias]
    qn = db.ops.quote_name
    c = {
        name: qn(Connection._meta.get_field(name).column)
        for name in (*_CHECKED_CONNECTION_FIELDS, "is_active")
    }
    cr = {
        name: qn(Credential._meta.get_field(name).column)
        for name in ("id", "tenant", "platform", "scope", "ciphertext", "purpose", "state")
    }
    same = " AND ".join(f"c.{c[name]} = %s" for name in _CHECKED_CONNECTION_FIELDS)
    sql = (
        f"EXISTS (SELECT 1 FROM {qn(Connection._meta.db_table)} c "
        f"JOIN {qn(Tenant._meta.db_table)} t ON t.{qn(Tenant._meta.pk.column)} = c.{c['tenant']} "
        f"WHERE {same} AND c.{c['is_active']} AND t.{qn(Tenant._meta.get_field('slug').column)} = %s)"
    )
    purpose = _literal(Credential.Purpose.WEBHOOK_SECRET.value)
    states = f"{_literal(Credential.State.ACTIVE.value)}, {_literal(Credential.State.PENDING.value)}"
    held = " AND ".join(f"s.{cr[name]} = %s" for name in ("id", "tenant", "platform", "scope", "ciphertext"))
    secret = (
        f"EXISTS (SELECT 1 FROM {qn(Credential._meta.db_table)} s WHERE {held} "
        f"AND s.{cr['purpose']} = {purpose} AND s.{cr['state']} IN ({states}))"
    )
    return " AND ".join([sql] + [secret] * secrets)


def _literal(value: str) -> str:
    """A choice's value as an SQL string literal: only plain identifiers are ever written this way."""
    if not value.isidentifier():
        raise ValueError(f"not a plain identifier: {value!r}")
    return f"'{value}'"


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
        for name in ("id", "tenant", "purpose", "ciphertext", "platform", "scope", "state")
    }
    sql = (
        f"SELECT {connection_row.select}, {tenant_row.select}, "
        f"cr.{cr['id']}, cr.{cr['ciphertext']}, cr.{cr['platform']}, cr.{cr['scope']}, cr.{cr['state']} "
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
