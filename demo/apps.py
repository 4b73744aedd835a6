from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Installed only with the sandbox (SANDBOX_ENABLED): its commands drive the fake Virtuous."""

    name = "demo"
    verbose_name = "Demo"
