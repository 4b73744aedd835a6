from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Sync"

    def ready(self) -> None:
        from config.processes import qcluster_hooks_install
        from sync import checks  # noqa: F401 (registers the system checks)

        qcluster_hooks_install()
