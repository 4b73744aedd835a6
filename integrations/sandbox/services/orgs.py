"""Sandbox organisations, their API tokens and fault knobs."""

import datetime as dt
import hashlib
import secrets
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations.sandbox.models import (
    SandboxCounters,
    SandboxOrganization,
)

SANDBOX_SUFFIX = "(Sandbox)"
TOKEN_PREFIX = "vsbx_"


# --- organisations and tokens -------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@transaction.atomic
def sandbox_org_create(
    *, name: str, time_zone: str = "America/Chicago", rate_limit: int = 5000, window_seconds: int = 3600
) -> tuple[SandboxOrganization, str]:
    """Create an organisation; returns it and its token, which is never retrievable again."""
    name = name.strip()
    if not name.endswith(SANDBOX_SUFFIX):
        name = f"{name} {SANDBOX_SUFFIX}"
    token = _new_token()
    organization = SandboxOrganization(
        name=name,
        time_zone=time_zone,
        rate_limit=rate_limit,
        window_seconds=window_seconds,
        token_hash=token_hash(token),
        token_last4=token[-4:],
    )
    organization.full_clean()
    organization.save()
    SandboxCounters.objects.create(organization=organization)
    return organization, token


def sandbox_org_token_regenerate(*, organization: SandboxOrganization) -> str:
    """Replace the token (the old one stops working at once); returns the new one."""
    token = _new_token()
    SandboxOrganization.objects.filter(pk=organization.pk).update(
        token_hash=token_hash(token), token_last4=token[-4:]
    )
    organization.token_hash, organization.token_last4 = token_hash(token), token[-4:]
    return token


def sandbox_org_token_set(*, organization: SandboxOrganization, token: str) -> None:
    """Give the organisation a token chosen by the caller (the demo's published key), so a person
    can paste a key they were told. Like a Virtuous key it is long and random-looking; the demo's
    is public, which is why only make run's demo (DEBUG) sets one."""
    if not token.startswith(TOKEN_PREFIX) or len(token) < 24:
        raise ValueError(f"A sandbox token starts with {TOKEN_PREFIX!r} and has at least 24 characters.")
    taken = SandboxOrganization.objects.filter(token_hash=token_hash(token)).exclude(pk=organization.pk)
    if taken.exists():
        raise ValueError("Another sandbox organisation has this token.")
    SandboxOrganization.objects.filter(pk=organization.pk).update(
        token_hash=token_hash(token), token_last4=token[-4:]
    )
    organization.token_hash, organization.token_last4 = token_hash(token), token[-4:]


def sandbox_org_authenticate(*, token: str) -> SandboxOrganization | None:
    """The organisation a bearer token belongs to (one indexed lookup), or None."""
    if not token:
        return None
    return SandboxOrganization.objects.filter(token_hash=token_hash(token)).first()


FAULT_FIELDS = (
    "error_rate",
    "error_statuses",
    "added_latency_ms",
    "timeout_rate",
    "timeout_seconds",
    "error_after_rate",
    "storm_until",
    "storm_retry_after",
)


def sandbox_faults_set(*, organization: SandboxOrganization, **knobs: Any) -> SandboxOrganization:
    """Change fault knobs (any of ``FAULT_FIELDS``); validated like the admin form."""
    unknown = set(knobs) - set(FAULT_FIELDS)
    if unknown:
        raise ValueError(f"Unknown fault knobs: {sorted(unknown)}")
    for name, value in knobs.items():
        setattr(organization, name, value)
    organization.full_clean()
    statuses = organization.error_status_list
    if any(s < 400 or s > 599 for s in statuses):
        raise ValueError("error_statuses must be HTTP error statuses (400-599).")
    organization.save(update_fields=list(knobs))
    return organization


def sandbox_faults_reset(*, organization: SandboxOrganization) -> SandboxOrganization:
    return sandbox_faults_set(
        organization=organization,
        error_rate=0.0,
        added_latency_ms=0,
        timeout_rate=0.0,
        error_after_rate=0.0,
        storm_until=None,
    )


def sandbox_storm_start(*, organization: SandboxOrganization, seconds: int, retry_after: int) -> None:
    """Answer every request with 429 + ``Retry-After: retry_after`` for the next ``seconds``."""
    sandbox_faults_set(
        organization=organization,
        storm_until=timezone.now() + dt.timedelta(seconds=seconds),
        storm_retry_after=retry_after,
    )
