from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tenants import selectors, services
from tenants.management.base import CLI
from tenants.models import Credential, Tenant

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "giftline-demo"  # demo only: the command refuses to run without DEBUG
SANDBOX_ORG_NAME = "Demo Nonprofit (Sandbox)"
SANDBOX_BASE_URL = "http://127.0.0.1:8000/sandbox/virtuous"


class Command(BaseCommand):
    help = "Create the demo superuser and demo tenant for `make run` (DEBUG only; idempotent)."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("demo_setup only runs with DEBUG=true: it creates a known password.")
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(
            username=DEMO_USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        user.set_password(DEMO_PASSWORD)
        user.is_staff = user.is_superuser = True
        user.save()
        tenant = Tenant.objects.filter(slug="demo").first()
        if tenant is None:
            tenant = services.tenant_create(slug="demo", name="Demo Nonprofit", actor=CLI)
        virtuous = self._connect_sandbox(tenant) if settings.SANDBOX_ENABLED else "production (no sandbox)"
        lines = [
            "",
            "Giftline demo is ready:",
            "  admin:    http://127.0.0.1:8000/admin/",
            f"  login:    {DEMO_USERNAME} / {DEMO_PASSWORD}",
            f"  tenant:   {tenant.name} ({tenant.slug}, {tenant.public_id})",
            f"  virtuous: {virtuous}",
        ]
        if settings.SANDBOX_ENABLED:
            lines += self._try_onboarding()
        self.stdout.write("\n".join([*lines, ""]))

    def _try_onboarding(self) -> list[str]:
        """A second sandbox organisation with a published key, for trying onboarding in a minute
        (docs/customer-success.md walks through it). Its tenant is made by onboarding itself."""
        from integrations.sandbox.demo import TRY_API_KEY, try_onboarding_offer, try_onboarding_org_ensure

        organization = try_onboarding_org_ensure()
        taken = set(Tenant.objects.values_list("slug", flat=True))
        offer = try_onboarding_offer(taken)
        return [
            "",
            "Try onboarding (about a minute): open Tenant health → Onboard a customer and use",
            f"  organisation: {organization.name}",
            f"  name / slug:  {offer.name} / {offer.slug}" if offer else "",
            f"  base URL:     {SANDBOX_BASE_URL}",
            f"  API key:      {TRY_API_KEY}   (a sandbox key, published on purpose)",
            "  (the onboarding page offers the same values with a 'Fill in these values' button)",
        ]

    def _connect_sandbox(self, tenant: Tenant) -> str:
        """Point the demo tenant at the built-in Virtuous sandbox (idempotent).

        The sandbox keeps only a hash of its token, so a new token is issued whenever the
        tenant's Virtuous token credential is missing or does not open this organisation.
        """
        # Imported here: the sandbox app (and its models) exist only when SANDBOX_ENABLED is on.
        from integrations.sandbox.models import SandboxOrganization
        from integrations.sandbox.services import (
            sandbox_org_authenticate,
            sandbox_org_create,
            sandbox_org_token_regenerate,
        )

        organization = SandboxOrganization.objects.filter(name=SANDBOX_ORG_NAME).first()
        token = None
        if organization is None:
            organization, token = sandbox_org_create(name=SANDBOX_ORG_NAME)
        current = selectors.credential_secret(
            tenant=tenant, platform=Credential.Platform.VIRTUOUS, purpose=Credential.Purpose.API_TOKEN
        )
        if token is None and (not current or sandbox_org_authenticate(token=current) != organization):
            token = sandbox_org_token_regenerate(organization=organization)
        if tenant.virtuous_base_url != SANDBOX_BASE_URL:
            # A new URL takes the token with it (the token for the old one must not follow).
            token = token or sandbox_org_token_regenerate(organization=organization)
            services.tenant_virtuous_url_change(
                tenant=tenant, base_url=SANDBOX_BASE_URL, api_token=token, actor=CLI
            )
        elif token is not None:
            services.credential_set(
                tenant=tenant,
                platform=Credential.Platform.VIRTUOUS,
                purpose=Credential.Purpose.API_TOKEN,
                secret=token,
                actor=CLI,
            )
        changes = {
            "virtuous_org_name": organization.name,
            "virtuous_time_zone": organization.time_zone,
        }
        changes = {k: v for k, v in changes.items() if getattr(tenant, k) != v}
        if changes:
            services.tenant_update(tenant=tenant, actor=CLI, changes=changes)
        return f"{organization.name} at {SANDBOX_BASE_URL}/ (sandbox organisation {organization.pk})"
