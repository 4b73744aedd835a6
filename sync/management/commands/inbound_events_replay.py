from django.core.management.base import BaseCommand, CommandError

from integrations.models import InboundEvent
from sync.inbound.replay import REPLAYABLE_STATUSES, inbound_events_replay
from tenants.management.base import CLI, tenant_from_arg


class Command(BaseCommand):
    help = "Put processed/failed/needs-review inbound events back to pending (the admin's 'Replay')."

    def add_arguments(self, parser):
        parser.add_argument("--ids", nargs="*", default=[], help="Inbound event public ids")
        parser.add_argument("--tenant", default="", help="Limit to this tenant (slug or id)")
        parser.add_argument("--status", choices=REPLAYABLE_STATUSES, help="Only events in this status")

    def handle(self, *args, **options):
        if not options["ids"] and not options["tenant"]:
            raise CommandError("Name the events with --ids or --tenant.")
        qs = InboundEvent.objects.all()
        if options["tenant"]:
            qs = qs.filter(tenant=tenant_from_arg(options["tenant"]))
        if options["ids"]:
            qs = qs.filter(public_id__in=options["ids"])
        if options["status"]:
            qs = qs.filter(status=options["status"])
        n = inbound_events_replay(events=qs.only("pk"), actor=CLI)
        self.stdout.write(f"Queued {n} event(s) for replay.")
