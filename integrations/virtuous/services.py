"""Onboarding services on the Virtuous side: the webhook subscription."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from integrations.models import Connection
from integrations.services import connection_create
from integrations.virtuous.client import VirtuousClient
from integrations.virtuous.errors import ErrorClass, VirtuousError
from integrations.virtuous.inbound import HANDLED
from tenants import services as tenant_services
from tenants.models import Credential, Tenant
from tenants.virtuous_hosts import virtuous_base_url_problem


@dataclass(frozen=True)
class VirtuousOrganisation:
    """What Organization/Current says about the organisation an API key belongs to."""

    name: str
    time_zone: str


def virtuous_key_check(*, api_key: str, base_url: str = "") -> VirtuousOrganisation:
    """Check a key live with one low-impact call; raises VirtuousError when Virtuous refuses it."""
    api_key = api_key.strip()
    if not api_key:
        raise VirtuousError(ErrorClass.NEEDS_ATTENTION, "The API key is empty.")
    problem = virtuous_base_url_problem(base_url)
    if problem:
        raise VirtuousError(ErrorClass.NEEDS_ATTENTION, problem)
    client = VirtuousClient(
        base_url=base_url or settings.VIRTUOUS_BASE_URL,
        token=api_key,
        budget=None,
        tenant_label="onboarding",
        guard_urls=bool(base_url),
    )
    org = client.organization_current()
    name = str(org.get("organizationName") or org.get("name") or "").strip()
    if not name:
        raise VirtuousError(
            ErrorClass.NEEDS_ATTENTION,
            "Virtuous answered without an organisation name; the key is not usable.",
        )
    return VirtuousOrganisation(name=name, time_zone=str(org.get("organizationTimeZone") or "UTC"))


def virtuous_tenant_onboard(
    *,
    slug: str,
    name: str,
    api_key: str,
    base_url: str = "",
    actor: tenant_services.Actor = tenant_services.SYSTEM,
) -> Tenant:
    """Create a tenant from a Virtuous API key that answers; the key is refused before anything is stored."""
    org = virtuous_key_check(api_key=api_key, base_url=base_url)
    with transaction.atomic():
        tenant = tenant_services.tenant_create(
            slug=slug, name=name, virtuous_base_url=base_url, virtuous_token=api_key, actor=actor
        )
        tenant_services.tenant_update(
            tenant=tenant,
            actor=actor,
            changes={"virtuous_org_name": org.name, "virtuous_time_zone": org.time_zone},
        )
    return tenant


def connection_webhook_url(*, connection: Connection, base_url: str) -> str:
    return base_url.rstrip("/") + reverse("integrations:receive", args=[connection.webhook_token])


def virtuous_connection_get_or_create(
    *, tenant: Tenant, actor: tenant_services.Actor = tenant_services.SYSTEM
) -> Connection:
    existing = Connection.objects.filter(tenant=tenant, provider="virtuous").first()
    return existing or connection_create(
        tenant=tenant,
        provider="virtuous",
        source_name=tenant.source_name,
        name="Virtuous webhooks",
        actor=actor,
    )


def virtuous_subscription_create(
    *,
    tenant: Tenant,
    base_url: str,
    actor: tenant_services.Actor = tenant_services.SYSTEM,
    client: VirtuousClient | None = None,
) -> Connection:
    """Subscribe the tenant's Virtuous organisation to our webhook URL with a fresh secret.

    The secret is stored (pending, so deliveries verify at once) before the subscription exists,
    and becomes active once Virtuous has it; the subscription id is kept, since Virtuous has no
    endpoint that lists subscriptions.
    """
    connection = virtuous_connection_get_or_create(tenant=tenant, actor=actor)
    secret = secrets.token_urlsafe(48)
    credential = tenant_services.credential_set(
        tenant=tenant,
        platform=Credential.Platform.VIRTUOUS,
        purpose=Credential.Purpose.WEBHOOK_SECRET,
        secret=secret,
        activate=False,
        actor=actor,
    )
    client = client or VirtuousClient.for_tenant(tenant)
    body = {
        "payloadUrl": connection_webhook_url(connection=connection, base_url=base_url),
        "secret": secret,
        "active": True,
        **{event: True for event in HANDLED},
    }
    try:
        response = client.webhook_create(body)
    except Exception:
        tenant_services.credential_retire(credential=credential, actor=actor)
        raise
    with transaction.atomic():
        tenant_services.credential_activate(credential=credential, actor=actor)
        tenant_services.tenant_update(
            tenant=tenant, actor=actor, changes={"virtuous_webhook_id": str(response.get("id", ""))}
        )
    return connection


def virtuous_webhook_secret_rotate(
    *,
    tenant: Tenant,
    actor: tenant_services.Actor = tenant_services.SYSTEM,
    client: VirtuousClient | None = None,
) -> Credential:
    """Start a rotation: a fresh secret is stored as pending (deliveries verify with the old and the
    new one from now on) and given to Virtuous by GET-then-PUT, so no event toggle is switched off.

    Finish with ``virtuous_webhook_secret_rotation_finish`` once deliveries signed with the old
    secret can no longer arrive (Virtuous retries failed deliveries for hours).
    """
    if not tenant.virtuous_webhook_id:
        raise ValueError(f"{tenant.slug} has no Virtuous webhook subscription to rotate.")
    client = client or VirtuousClient.for_tenant(tenant)
    secret = secrets.token_urlsafe(48)
    current = client.webhook_get(tenant.virtuous_webhook_id)
    credential = tenant_services.credential_set(
        tenant=tenant,
        platform=Credential.Platform.VIRTUOUS,
        purpose=Credential.Purpose.WEBHOOK_SECRET,
        secret=secret,
        activate=False,
        actor=actor,
    )
    body = {k: v for k, v in current.items() if k not in ("id", "secret")}
    try:
        client.webhook_update(tenant.virtuous_webhook_id, {**body, "secret": secret})
    except Exception:
        tenant_services.credential_retire(credential=credential, actor=actor)
        raise
    return credential


def virtuous_webhook_secret_rotation_finish(
    *, tenant: Tenant, actor: tenant_services.Actor = tenant_services.SYSTEM
) -> Credential:
    """End the overlap: the newest pending secret becomes the only one accepted."""
    credential = (
        Credential.objects.filter(
            tenant=tenant,
            platform=Credential.Platform.VIRTUOUS,
            purpose=Credential.Purpose.WEBHOOK_SECRET,
            scope="",
            state=Credential.State.PENDING,
        )
        .order_by("-pk")
        .first()
    )
    if credential is None:
        raise ValueError(f"{tenant.slug} has no Virtuous webhook secret rotation in progress.")
    return tenant_services.credential_activate(credential=credential, actor=actor)
