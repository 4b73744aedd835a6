"""Startup check of the provider registry: every registered provider loads and can be stored.

Credentials are validated against the registry (``registry.credential_platforms``), so a provider
that fails to load would make every credential of its platform unsavable; say so at startup.
"""

from __future__ import annotations

from django.core.checks import Error, register

from integrations.registry import provider_get, provider_keys
from tenants.models import Credential

PLATFORM_MAX_LENGTH = Credential._meta.get_field("platform").max_length


@register()
def providers_check(app_configs, **kwargs) -> list[Error]:
    errors: list[Error] = []
    for key in provider_keys():
        try:
            spec = provider_get(key)
        except (ImportError, LookupError, AttributeError) as exc:
            errors.append(Error(f"Provider {key!r} does not load: {exc}", id="giftline.E101"))
            continue
        if not spec.credential_platform or len(spec.credential_platform) > PLATFORM_MAX_LENGTH:
            errors.append(
                Error(
                    f"Provider {key!r} has credential platform {spec.credential_platform!r}; it must be 1 to "
                    f"{PLATFORM_MAX_LENGTH} characters.",
                    id="giftline.E102",
                )
            )
        if spec.partner is not None and not callable(spec.partner.writer):
            errors.append(Error(f"Provider {key!r} has a partner side without a writer.", id="giftline.E103"))
    return errors
