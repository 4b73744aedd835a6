"""Which credential platforms exist. The tenants room knows no provider by name: the list comes
from the hook named by ``settings.CREDENTIAL_PLATFORMS`` (the integrations registry), looked up at
call time, so adding a provider needs no migration here.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string


def credential_platforms() -> dict[str, str]:
    """Every known platform with its label, from the configured hook."""
    try:
        hook = import_string(settings.CREDENTIAL_PLATFORMS)
    except ImportError as exc:
        raise ImproperlyConfigured(f"CREDENTIAL_PLATFORMS={settings.CREDENTIAL_PLATFORMS!r}: {exc}") from exc
    return dict(hook())


def credential_platform_validate(platform: str) -> None:
    """Refuse a platform no provider uses, naming the ones that exist."""
    known = credential_platforms()
    if platform not in known:
        raise ValueError(f"Unknown platform {platform!r}; one of: {', '.join(sorted(known))}.")


def credential_scope_check(*, tenant, platform: str, purpose: str, scope: str) -> str:
    """Refuse a secret stored where nothing will read it (the configured hook decides); returns
    what it belongs to, for the confirmation line."""
    return import_string(settings.CREDENTIAL_SCOPE_CHECK)(
        tenant=tenant, platform=platform, purpose=purpose, scope=scope
    )


def credential_scope_choices(*, tenants) -> dict[int, list[tuple[str, str, str]]]:
    """Per tenant pk, the connections a secret may belong to: (scope, label, platform)."""
    return import_string(settings.CREDENTIAL_SCOPES)(tenants=tenants)
