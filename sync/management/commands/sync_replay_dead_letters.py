from django.core.management.base import BaseCommand, CommandError

from sync.models import DeadLetter
from sync.outbound.deadletters import DeadLetterError, dead_letter_replay
from tenants.management.base import CLI, tenant_from_arg


def open_dead_letters(options) -> list[DeadLetter]:
    """The open dead letters named by --ids (public ids), or all of --tenant's."""
    if not options["ids"] and not options["tenant"]:
        raise CommandError("Name the dead letters with --ids or --tenant.")
    qs = DeadLetter.objects.filter(resolution=DeadLetter.Resolution.OPEN).select_related("item", "tenant")
    if options["tenant"]:
        qs = qs.filter(tenant=tenant_from_arg(options["tenant"]))
    if options["ids"]:
        qs = qs.filter(public_id__in=options["ids"])
    return list(qs.order_by("created_at"))


class Command(BaseCommand):
    help = "Replay open dead letters as-is (the admin's 'Replay as-is')."

    def add_arguments(self, parser):
        parser.add_argument("--ids", nargs="*", default=[], help="Dead letter public ids")
        parser.add_argument("--tenant", default="", help="Every open dead letter of this tenant (slug or id)")

    def handle(self, *args, **options):
        done, failed = 0, 0
        for dl in open_dead_letters(options):
            try:
                dead_letter_replay(dead_letter=dl, actor=CLI)
                done += 1
            except DeadLetterError as exc:
                failed += 1
                self.stderr.write(f"{dl.public_id}: {exc}")
        self.stdout.write(f"Replayed {done} dead letter(s); {failed} could not be replayed.")
