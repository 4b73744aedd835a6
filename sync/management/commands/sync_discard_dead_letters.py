from django.core.management.base import BaseCommand, CommandError

from sync.management.commands.sync_replay_dead_letters import open_dead_letters
from sync.outbound.deadletters import DeadLetterError, dead_letter_discard
from tenants.management.base import CLI


class Command(BaseCommand):
    help = "Discard open dead letters with a reason (the admin's 'Discard')."

    def add_arguments(self, parser):
        parser.add_argument("--ids", nargs="*", default=[], help="Dead letter public ids")
        parser.add_argument("--tenant", default="", help="Every open dead letter of this tenant (slug or id)")
        parser.add_argument("--reason", required=True)

    def handle(self, *args, **options):
        if not options["reason"].strip():
            raise CommandError("A reason is required to discard.")
        done = 0
        for dl in open_dead_letters(options):
            try:
                dead_letter_discard(dead_letter=dl, actor=CLI, reason=options["reason"])
                done += 1
            except DeadLetterError as exc:
                self.stderr.write(f"{dl.public_id}: {exc}")
        self.stdout.write(f"Discarded {done} dead letter(s).")
