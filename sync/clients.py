"""The one 401 policy and the sync room's way to get a tenant's Virtuous client.

``tenant_needs_attention`` (pause the tenant and alert) is installed by ``SyncConfig.ready`` as
the policy of every client ``VirtuousClient.for_tenant`` builds, so a revoked key is reported the
same way whichever job meets it: drain, reconciler, import validation, offboarding, onboarding.
"""

from __future__ import annotations

from collections.abc import Callable

from config.metrics import observed_calls
from integrations.virtuous.client import CallRecord, VirtuousClient
from integrations.virtuous.errors import VirtuousError
from sync.ops import alerts
from tenants import services as tenant_services
from tenants.models import Tenant


def tenant_needs_attention(*, tenant: Tenant, error: VirtuousError) -> None:
    """Pause the tenant with the reason and alert its people (alerts are throttled per window)."""
    status = f" (HTTP {error.status_code})" if error.status_code else ""
    reason = f"Virtuous needs attention{status}: {error.message or error.error_class}"[:500]
    tenant_services.tenant_pause(tenant=tenant, reason=reason)
    alerts.alert_raise(
        tenant=tenant,
        kind="tenant_paused",
        subject=f"{tenant.name}: syncing paused",
        body=f"{reason}\nFix the credential, then resume the tenant in the admin.",
    )


def virtuous_client(
    tenant: Tenant, *, keep_reserve: bool = False, on_call: Callable[[CallRecord], None] | None = None
) -> VirtuousClient:
    return VirtuousClient.for_tenant(
        tenant, keep_reserve=keep_reserve, on_call=observed_calls(tenant, on_call)
    )
