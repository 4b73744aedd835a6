from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Sync"

    def ready(self) -> None:
        from config.processes import qcluster_hooks_install
        from integrations.virtuous.client import tenant_auth_policy_install
        from sync import checks  # noqa: F401 (registers the system checks)
        from sync.clients import tenant_needs_attention

        # The one 401 policy for every Virtuous client made for a tenant, in any room.
        tenant_auth_policy_install(lambda tenant, error: tenant_needs_attention(tenant=tenant, error=error))
        qcluster_hooks_install()
