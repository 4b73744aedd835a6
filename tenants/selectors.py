"""Tenant-scoped reads. Tenant data is reached only through these helpers.

Every function takes the tenant (or a user whose assignments decide which tenants they see)
and never returns another tenant's rows; lookups by public UUID raise ``DoesNotExist`` for a
row that belongs to someone else, exactly as for a row that does not exist.
"""

from __future__ import annotations

from functools import cache
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.db.models import QuerySet

from tenants import crypto
from tenants.models import AuditEvent, Credential, Tenant


def user_sees_all_tenants(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(user.is_active and (user.is_superuser or user.has_perm("tenants.view_all_tenants")))


def tenant_list(*, user: AbstractBaseUser | AnonymousUser | None = None) -> QuerySet[Tenant]:
    """All tenants for operators (user=None) and integration admins; assigned ones for other staff."""
    qs = Tenant.objects.all()
    if user is None or user_sees_all_tenants(user):
        return qs
    if not user.is_authenticated or not user.is_active:
        return qs.none()
    return qs.filter(assigned_staff=user)


def tenant_get(*, public_id: UUID | str, user: AbstractBaseUser | AnonymousUser | None = None) -> Tenant:
    return tenant_list(user=user).get(public_id=public_id)


def tenant_get_by_ref(*, ref: str) -> Tenant:
    """Find a tenant by slug or public UUID (management commands accept either)."""
    try:
        return Tenant.objects.get(public_id=UUID(ref))
    except ValueError:
        return Tenant.objects.get(slug=ref)


def credential_list(*, tenant: Tenant) -> QuerySet[Credential]:
    return Credential.objects.filter(tenant=tenant)


def credential_get(*, tenant: Tenant, public_id: UUID | str) -> Credential:
    return credential_list(tenant=tenant).get(public_id=public_id)


@cache
def _active_secret_sql() -> str:
    """The active credential's ciphertext, as one fixed SQL text (at most one row: the
    ``credential_one_active`` constraint). Every Virtuous client is built from it, once per drain
    turn, and compiling the same ORM filter each time cost more than the query itself."""
    meta, quote = Credential._meta, connection.ops.quote_name
    column = {name: quote(meta.get_field(name).column) for name in ("tenant", "platform", "purpose", "scope")}
    where = " AND ".join(f"{col} = %s" for col in column.values())
    return (
        f"SELECT {quote(meta.get_field('ciphertext').column)} FROM {quote(meta.db_table)}"
        f" WHERE {where} AND {quote(meta.get_field('state').column)} = %s"
    )


def credential_secret(*, tenant: Tenant, platform: str, purpose: str, scope: str = "") -> str | None:
    """The active secret, decrypted, or None when none is set."""
    with connection.cursor() as cursor:
        cursor.execute(_active_secret_sql(), [tenant.pk, platform, purpose, scope, Credential.State.ACTIVE])
        row = cursor.fetchone()
    return crypto.decrypt(row[0]) if row else None


def credential_secrets_for_verification(
    *, tenant: Tenant, platform: str, purpose: str, scope: str = ""
) -> list[str]:
    """Every secret a signature may be made with during a rotation: active first, then pending."""
    creds = (
        credential_list(tenant=tenant)
        .filter(
            platform=platform,
            purpose=purpose,
            scope=scope,
            state__in=[Credential.State.ACTIVE, Credential.State.PENDING],
        )
        .order_by("state")  # "active" sorts before "pending"
    )
    return [crypto.decrypt_cached(c.ciphertext) for c in creds]


def audit_event_list(*, tenant: Tenant) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(tenant=tenant)
