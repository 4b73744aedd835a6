"""Writes on tenants and credentials. Each one is atomic and leaves an audit row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from tenants import crypto
from tenants.models import AuditEvent, Credential, Tenant
from tenants.platforms import credential_platform_validate


@dataclass(frozen=True)
class Actor:
    """Who made a change: a user (admin) or a named channel (cli, system, sandbox)."""

    user: AbstractBaseUser | None = None
    via: str = "system"


SYSTEM = Actor()


def audit_record(
    *,
    actor: Actor,
    action: str,
    tenant: Tenant | None = None,
    target: Any = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    user = actor.user if actor.user is not None and actor.user.pk else None
    return AuditEvent.objects.create(
        tenant=tenant,
        tenant_slug=tenant.slug if tenant else "",
        actor=user,
        via=actor.via,
        action=action,
        target_type=type(target).__name__ if target is not None else "",
        target_id=str(getattr(target, "public_id", "") or "") if target is not None else "",
        details=details or {},
    )


@transaction.atomic
def tenant_create(
    *,
    slug: str,
    name: str,
    actor: Actor = SYSTEM,
    virtuous_base_url: str = "",
    hourly_request_budget: int | None = None,
    virtuous_token: str | None = None,
) -> Tenant:
    tenant = Tenant(slug=slug, name=name, virtuous_base_url=virtuous_base_url)
    if hourly_request_budget is not None:
        tenant.hourly_request_budget = hourly_request_budget
    tenant.full_clean()
    tenant.save()
    audit_record(
        actor=actor,
        action="tenant.created",
        tenant=tenant,
        target=tenant,
        details={"slug": slug, "name": name, "budget": tenant.hourly_request_budget},
    )
    if virtuous_token:
        credential_set(
            tenant=tenant,
            platform=Credential.Platform.VIRTUOUS,
            purpose=Credential.Purpose.API_TOKEN,
            secret=virtuous_token,
            actor=actor,
        )
    return tenant


def tenant_update(*, tenant: Tenant, actor: Actor, changes: dict[str, Any]) -> Tenant:
    """Apply field changes (settings, flags) and audit each one with its old and new value.

    The Virtuous base URL is not changed here: see :func:`tenant_virtuous_url_change`.
    """
    if "virtuous_base_url" in changes and changes["virtuous_base_url"] != tenant.virtuous_base_url:
        raise ValueError(
            "Changing the Virtuous base URL needs the tenant's API token again (tenant_virtuous_url_change)."
        )
    changes = {f: v for f, v in changes.items() if f != "virtuous_base_url"}
    before = {field: getattr(tenant, field) for field in changes}
    for field, value in changes.items():
        setattr(tenant, field, value)
    tenant.full_clean()
    with transaction.atomic():
        tenant.save(update_fields=[*changes, "updated_at"])
        diff = {
            f: {"old": _jsonable(before[f]), "new": _jsonable(v)}
            for f, v in changes.items()
            if before[f] != v
        }
        if diff:
            audit_record(actor=actor, action="tenant.updated", tenant=tenant, target=tenant, details=diff)
    return tenant


def tenant_virtuous_url_change(*, tenant: Tenant, base_url: str, api_token: str, actor: Actor) -> Tenant:
    """Point a tenant at another Virtuous host (an allowed one), with the token for that host.

    The token is asked again so that a person who may edit a tenant cannot redirect the stored
    token to a host of their choosing; the old and new URL are audited.
    """
    api_token = (api_token or "").strip()
    if not api_token:
        raise ValueError("Changing the Virtuous base URL needs the tenant's API token again.")
    base_url = (base_url or "").strip()
    old = tenant.virtuous_base_url
    tenant.virtuous_base_url = base_url
    try:
        tenant.full_clean()
    except Exception:
        tenant.virtuous_base_url = old
        raise
    with transaction.atomic():
        tenant.save(update_fields=["virtuous_base_url", "updated_at"])
        credential_set(
            tenant=tenant,
            platform=Credential.Platform.VIRTUOUS,
            purpose=Credential.Purpose.API_TOKEN,
            secret=api_token,
            actor=actor,
        )
        audit_record(
            actor=actor,
            action="tenant.virtuous_url_changed",
            tenant=tenant,
            target=tenant,
            details={"old": old, "new": base_url},
        )
    return tenant


def tenant_pause(*, tenant: Tenant, reason: str, actor: Actor = SYSTEM) -> bool:
    """Pause all syncs of a tenant. Returns False when it was already paused (no new audit row)."""
    with transaction.atomic():
        now = timezone.now()
        changed = Tenant.objects.filter(pk=tenant.pk, status=Tenant.Status.ACTIVE).update(
            status=Tenant.Status.PAUSED, paused_reason=reason[:500], paused_at=now, updated_at=now
        )
        if changed:
            audit_record(
                actor=actor, action="tenant.paused", tenant=tenant, target=tenant, details={"reason": reason}
            )
    tenant.refresh_from_db(fields=["status", "paused_reason", "paused_at"])
    return bool(changed)


def tenant_resume(*, tenant: Tenant, actor: Actor = SYSTEM) -> bool:
    with transaction.atomic():
        changed = Tenant.objects.filter(pk=tenant.pk, status=Tenant.Status.PAUSED).update(
            status=Tenant.Status.ACTIVE, paused_reason="", paused_at=None, updated_at=timezone.now()
        )
        if changed:
            audit_record(actor=actor, action="tenant.resumed", tenant=tenant, target=tenant)
    tenant.refresh_from_db(fields=["status", "paused_reason", "paused_at"])
    return bool(changed)


def credential_set(
    *,
    tenant: Tenant,
    platform: str,
    purpose: str,
    secret: str,
    actor: Actor = SYSTEM,
    scope: str = "",
    activate: bool = True,
    expires_at=None,
) -> Credential:
    """Store a new secret. Active: it replaces (retires) the current one. Pending: it is
    accepted beside the active one until activated, so a rotation can overlap."""
    secret = secret.strip()
    if not secret:
        raise ValueError("The secret is empty.")
    credential_platform_validate(platform)
    if purpose not in Credential.Purpose.values:
        raise ValueError(f"Unknown purpose {purpose!r}; one of: {', '.join(Credential.Purpose.values)}.")
    state = Credential.State.ACTIVE if activate else Credential.State.PENDING
    now = timezone.now()
    with transaction.atomic():
        Credential.objects.select_for_update().filter(
            tenant=tenant, platform=platform, purpose=purpose, scope=scope, state=state
        ).update(state=Credential.State.RETIRED, retired_at=now)
        credential = Credential.objects.create(
            tenant=tenant,
            platform=platform,
            purpose=purpose,
            scope=scope,
            state=state,
            ciphertext=crypto.encrypt(secret),
            last4=secret[-4:],
            expires_at=expires_at,
            set_by=actor.user if actor.user is not None and actor.user.pk else None,
            activated_at=now if activate else None,
        )
        audit_record(
            actor=actor,
            action="credential.set",
            tenant=tenant,
            target=credential,
            details={"platform": platform, "purpose": purpose, "scope": scope, "state": state},
        )
    return credential


def credential_activate(*, credential: Credential, actor: Actor = SYSTEM) -> Credential:
    """Promote a pending credential; the one it replaces is retired."""
    if credential.state != Credential.State.PENDING:
        raise ValueError("Only a pending credential can be activated.")
    now = timezone.now()
    with transaction.atomic():
        Credential.objects.filter(
            tenant=credential.tenant_id,
            platform=credential.platform,
            purpose=credential.purpose,
            scope=credential.scope,
            state=Credential.State.ACTIVE,
        ).update(state=Credential.State.RETIRED, retired_at=now)
        Credential.objects.filter(pk=credential.pk).update(state=Credential.State.ACTIVE, activated_at=now)
        audit_record(actor=actor, action="credential.activated", tenant=credential.tenant, target=credential)
    credential.refresh_from_db()
    return credential


def credential_retire(*, credential: Credential, actor: Actor = SYSTEM) -> Credential:
    with transaction.atomic():
        changed = (
            Credential.objects.filter(pk=credential.pk)
            .exclude(state=Credential.State.RETIRED)
            .update(state=Credential.State.RETIRED, retired_at=timezone.now())
        )
        if changed:
            audit_record(
                actor=actor, action="credential.retired", tenant=credential.tenant, target=credential
            )
    credential.refresh_from_db()
    return credential


def credentials_rotate_key(*, actor: Actor = SYSTEM, chunk_size: int = 500) -> int:
    """Re-encrypt every credential under the newest key (first in CREDENTIAL_KEYS).

    Each chunk commits on its own, so an interrupted run is simply run again: rows already
    under the new key are re-encrypted harmlessly.
    """
    count = 0
    last_pk = 0
    while True:
        with transaction.atomic():
            rows = list(
                Credential.objects.select_for_update()
                .filter(pk__gt=last_pk)
                .order_by("pk")
                .only("pk", "ciphertext")[:chunk_size]
            )
            if not rows:
                break
            for row in rows:
                row.ciphertext = crypto.reencrypt(row.ciphertext)
            Credential.objects.bulk_update(rows, ["ciphertext"])
            count += len(rows)
            last_pk = rows[-1].pk
    audit_record(actor=actor, action="credentials.key_rotated", details={"count": count})
    return count


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
