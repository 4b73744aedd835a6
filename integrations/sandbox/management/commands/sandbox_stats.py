import json

from django.core.management.base import BaseCommand

from integrations.sandbox.management.base import organization_from_arg
from integrations.sandbox.models import SandboxCounters


class Command(BaseCommand):
    help = "Print the counters of a sandbox organisation (ORG is its id or exact name)."

    def add_arguments(self, parser):
        parser.add_argument("org")
        parser.add_argument("--json", action="store_true", help="One JSON object instead of lines")

    def handle(self, *args, **options):
        organization = organization_from_arg(options["org"])
        counters = SandboxCounters.objects.get(pk=organization.pk).as_dict()
        if options["json"]:
            self.stdout.write(json.dumps(counters))
            return
        self.stdout.write(organization.name)
        for name, value in counters.items():
            self.stdout.write(f"  {name:<24} {value}")
