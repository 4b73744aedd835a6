from django.core.management.base import BaseCommand

from integrations.sandbox import services
from integrations.sandbox.management.base import organization_from_arg


class Command(BaseCommand):
    help = "Run the sandbox's nightly batch now: held contacts and gifts become records, webhooks fire."

    def add_arguments(self, parser):
        parser.add_argument("--org", help="Only this organisation (id or exact name); default all")

    def handle(self, *args, **options):
        organization = organization_from_arg(options["org"]) if options["org"] else None
        result = services.sandbox_batch_run(organization=organization)
        self.stdout.write(" ".join(f"{k}={v}" for k, v in result.items()))
