"""The organisation ``make run``'s demo keeps ready for trying onboarding: its API key is published
(printed by demo_setup, shown on the onboarding page) so anyone can walk through onboarding in a
minute. It exists only where demo_setup ran, which refuses to run without DEBUG."""

from __future__ import annotations

from dataclasses import dataclass

from integrations.sandbox.models import SandboxOrganization
from integrations.sandbox.services import sandbox_org_authenticate, sandbox_org_create, sandbox_org_token_set

TRY_ORG_NAME = "Try Onboarding Nonprofit (Sandbox)"
TRY_API_KEY = "vsbx_try-onboarding-demo-key-2026"
TRY_TENANT_NAME = "Try onboarding"
TRY_TENANT_SLUG = "try-onboarding"


@dataclass(frozen=True)
class TryOnboarding:
    """What the onboarding page suggests typing: a free slug, and the sandbox's published key."""

    name: str
    slug: str
    api_key: str
    organization: str


def try_onboarding_org_ensure(*, time_zone: str = "America/New_York") -> SandboxOrganization:
    """Create (or repair) the try-onboarding organisation so the published key opens it."""
    organization = sandbox_org_authenticate(token=TRY_API_KEY)
    if organization is not None:
        return organization
    organization = SandboxOrganization.objects.filter(name=TRY_ORG_NAME).first()
    if organization is None:
        organization, _ = sandbox_org_create(name=TRY_ORG_NAME, time_zone=time_zone)
    sandbox_org_token_set(organization=organization, token=TRY_API_KEY)
    return organization


def try_onboarding_offer(taken_slugs: set[str]) -> TryOnboarding | None:
    """The values to offer, or None where demo_setup has not prepared the organisation. The slug
    moves on (try-onboarding-2, -3) once a tenant has taken it, so the walk-through can be repeated."""
    organization = sandbox_org_authenticate(token=TRY_API_KEY)
    if organization is None:
        return None
    slug, n = TRY_TENANT_SLUG, 1
    while slug in taken_slugs:
        n += 1
        slug = f"{TRY_TENANT_SLUG}-{n}"
    name = TRY_TENANT_NAME if n == 1 else f"{TRY_TENANT_NAME} {n}"
    return TryOnboarding(name=name, slug=slug, api_key=TRY_API_KEY, organization=organization.name)
