"""Tenant-scoped reads of connections."""

from __future__ import annotations

from uuid import UUID

from django.db.models import QuerySet

from integrations.models import Connection
from tenants.models import Tenant


def connection_list(*, tenant: Tenant) -> QuerySet[Connection]:
    return Connection.objects.filter(tenant=tenant)


def connection_get(*, tenant: Tenant, public_id: UUID | str) -> Connection:
    return connection_list(tenant=tenant).get(public_id=public_id)


def tenant_write_sources(*, tenant: Tenant) -> set[str]:
    """Every transactionSource/referenceSource we write for this tenant: how we recognise our echoes."""
    sources = set(
        connection_list(tenant=tenant).exclude(provider="virtuous").values_list("source_name", flat=True)
    )
    return {s for s in sources | {tenant.source_name} if s}
