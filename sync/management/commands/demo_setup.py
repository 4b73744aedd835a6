from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tenants import services
from tenants.management.base import CLI
from tenants.models import Tenant

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "giftline-demo"  # demo only: the command refuses to run without DEBUG


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
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "Giftline demo is ready:",
                    "  admin:    http://127.0.0.1:8000/admin/",
                    f"  login:    {DEMO_USERNAME} / {DEMO_PASSWORD}",
                    f"  tenant:   {tenant.name} ({tenant.slug}, {tenant.public_id})",
                    "",
                ]
            )
        )
