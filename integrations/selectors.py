"""Tenant-scoped reads of connections."""

from __future__ import annotations

from django.db.models import QuerySet

from integrations.models import Connection
from tenants.models import Tenant


def connection_list(*, tenant: Tenant) -> QuerySet[Connection]:
    return Connection.objects.filter(tenant=tenant)


def tenant_write_sources(*, tenant: Tenant) -> set[str]:
    """Every transactionSource/referenceSource we write for this tenant: how we recognise our echoes."""
    sources = set(
        connection_list(tenant=tenant).exclude(provider="virtuous").values_list("source_name", flat=True)
    )
    return {s for s in sources | {tenant.source_name} if s}
