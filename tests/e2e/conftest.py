"""End-to-end fixtures: a tenant pointed at the in-process Virtuous sandbox, served by live_server."""

from __future__ import annotations

import pytest

from integrations.sandbox.models import SandboxOrganization
from integrations.sandbox.services import sandbox_org_create
from tenants import services as tenant_services
from tenants.models import Tenant


def point_tenant_at_sandbox(tenant: Tenant, base_url: str, **org_kwargs) -> SandboxOrganization:
    org, token = sandbox_org_create(name=f"{tenant.name} (Sandbox)", **org_kwargs)
    tenant_services.tenant_virtuous_url_change(
        tenant=tenant, base_url=f"{base_url}/sandbox/virtuous", api_token=token, actor=tenant_services.SYSTEM
    )
    tenant_services.tenant_update(
        tenant=tenant, actor=tenant_services.SYSTEM, changes={"virtuous_time_zone": "America/Chicago"}
    )
    return org


@pytest.fixture
def sandboxed(live_server, transactional_db):
    """Returns a function that points a tenant at a fresh sandbox organisation."""

    def _sandboxed(tenant: Tenant, **org_kwargs) -> SandboxOrganization:
        return point_tenant_at_sandbox(tenant, live_server.url, **org_kwargs)

    return _sandboxed
