"""The operations console: tenant health, onboarding and offboarding, dead letters, the sync logs.

Split the way the sync flows are: ``outbound`` (the queue, attempts, dead letters), ``inbound``
(the raw inbound log, checkpoints), ``two_way`` (per-record sync state, the reporting mirror),
``ops`` (alerts, import runs, the reconciliation log) and ``health`` (the tenant overview,
dashboard, onboarding and offboarding); ``common`` holds what they share.

Every page is scoped to the user's tenants (``TenantScopedAdminMixin`` or ``selectors.tenant_list``);
every button and action calls a service, which writes the audit row, and reports counts. Risky
bulk actions render a confirmation page first (the action runs again with ``post=yes`` once
confirmed). Importing the modules registers their admins.
"""

from sync.admin import health, inbound, ops, outbound, two_way

__all__ = ["health", "inbound", "ops", "outbound", "two_way"]
