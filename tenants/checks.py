"""Startup checks: a deployment that would be unsafe refuses to start."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

from tenants import crypto
from tenants.models import Credential
from tenants.platforms import credential_platforms


@register(Tags.security, deploy=False)
def giftline_settings_check(app_configs, **kwargs) -> list[Error]:
    errors: list[Error] = []
    problem = crypto.validate_keys(settings.CREDENTIAL_KEYS)
    if problem:
        errors.append(
            Error(
                f"{problem}.",
                hint="Generate one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())' and set CREDENTIAL_KEYS (or CREDENTIAL_KEYS_FILE).",
                id="giftline.E001",
            )
        )
    errors += _platforms_check()
    if not settings.DEBUG:
        if settings.SECRET_KEY == settings.INSECURE_DEV_SECRET_KEY or len(settings.SECRET_KEY) < 40:
            errors.append(
                Error(
                    "DEBUG is off but SECRET_KEY is missing, the development default, or shorter than 40 characters.",
                    hint="Set SECRET_KEY (or SECRET_KEY_FILE) to a long random value.",
                    id="giftline.E002",
                )
            )
        if settings.SANDBOX_ENABLED and not settings.SANDBOX_ENABLED_ACKNOWLEDGED:
            errors.append(
                Error(
                    "DEBUG is off but SANDBOX_ENABLED is on: a fake Virtuous that accepts any sandbox token "
                    "is served under /sandbox/virtuous/ and tenants may point at it.",
                    hint="Turn SANDBOX_ENABLED off, or set SANDBOX_ENABLED_ACKNOWLEDGED=true if this "
                    "deployment is a staging or demo server on purpose.",
                    id="giftline.E004",
                )
            )
        if settings.ALLOW_PRIVATE_NETWORK_URLS and not settings.ALLOW_PRIVATE_NETWORK_URLS_ACKNOWLEDGED:
            errors.append(
                Error(
                    "DEBUG is off but ALLOW_PRIVATE_NETWORK_URLS is on: tenant-supplied URLs may reach "
                    "loopback, private and cloud-metadata addresses.",
                    hint="Turn ALLOW_PRIVATE_NETWORK_URLS off, or set ALLOW_PRIVATE_NETWORK_URLS_ACKNOWLEDGED=true "
                    "if every tenant URL on this deployment is trusted.",
                    id="giftline.E005",
                )
            )
        fault_point = os.environ.get("GIFTLINE_FAULT_POINT", "") or getattr(
            settings, "GIFTLINE_FAULT_POINT", ""
        )
        if fault_point and not getattr(settings, "GIFTLINE_TEST_SETTINGS", False):
            errors.append(
                Error(
                    f"DEBUG is off but fault injection is on (GIFTLINE_FAULT_POINT={fault_point!r}): a drain "
                    "would stop and wait to be killed at that point.",
                    hint="Unset GIFTLINE_FAULT_POINT; fault injection exists for the reliability tests only.",
                    id="giftline.E006",
                )
            )
        if not settings.ALLOWED_HOSTS:
            errors.append(
                Error(
                    "DEBUG is off but ALLOWED_HOSTS is empty.",
                    hint="Set ALLOWED_HOSTS to the host names this deployment serves.",
                    id="giftline.E003",
                )
            )
    return errors


def _platforms_check() -> list[Error]:
    """Credentials are validated against the hook in CREDENTIAL_PLATFORMS: it must answer, and
    name Virtuous (every tenant's API token is stored under it)."""
    try:
        platforms = credential_platforms()
    except (ImproperlyConfigured, LookupError, ImportError) as exc:
        return [Error(f"The credential platforms cannot be listed: {exc}", id="giftline.E004")]
    if Credential.Platform.VIRTUOUS not in platforms:
        return [
            Error(
                f"CREDENTIAL_PLATFORMS lists no {Credential.Platform.VIRTUOUS!r} platform.",
                hint="Point CREDENTIAL_PLATFORMS at integrations.registry.credential_platforms.",
                id="giftline.E004",
            )
        ]
    return []
