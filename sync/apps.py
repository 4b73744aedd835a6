from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Sync"

    def ready(self) -> None:
        # The one 401 policy for every Virtuous client made for a tenant, in any room.
        from integrations.virtuous.client import tenant_auth_policy_install
        from sync.clients import tenant_needs_attention

        tenant_auth_policy_install(lambda tenant, error: tenant_needs_attention(tenant=tenant, error=error))
