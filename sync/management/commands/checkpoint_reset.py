from django.core.management.base import CommandError
from django.utils.dateparse import parse_datetime

from sync.inbound.checkpoints import checkpoint_reset
from sync.models import SyncCheckpoint
from tenants.management.base import CLI, TenantCommand, tenant_from_arg


class Command(TenantCommand):
    help = "Move a sync checkpoint back (the admin's 'Reset selected checkpoints')."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--scope", default="", help="Connection public id; blank for Virtuous")
        parser.add_argument("--resource", required=True, help="Resource type, e.g. donations, gift")
        parser.add_argument("--direction", required=True, choices=SyncCheckpoint.Direction.values)
        parser.add_argument("--to", default="", help="ISO time to re-read from; blank = from the beginning")

    def handle(self, *args, **options):
        tenant = tenant_from_arg(options["tenant"])
        to = None
        if options["to"]:
            to = parse_datetime(options["to"])
            if to is None or to.tzinfo is None:
                raise CommandError(
                    "--to must be an ISO time with a UTC offset, e.g. 2026-11-01T00:00:00+00:00"
                )
        try:
            checkpoint = SyncCheckpoint.objects.get(
                tenant=tenant,
                scope=options["scope"],
                resource_type=options["resource"],
                direction=options["direction"],
            )
        except SyncCheckpoint.DoesNotExist as exc:
            raise CommandError("No such checkpoint for this tenant.") from exc
        checkpoint_reset(checkpoint=checkpoint, actor=CLI, to=to)
        self.stdout.write(
            f"Reset 1 checkpoint of {tenant.slug} to {to.isoformat() if to else 'the beginning'}."
        )
