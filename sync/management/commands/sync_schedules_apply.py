from django.core.management.base import BaseCommand

from sync.schedules import schedules_apply


class Command(BaseCommand):
    help = "Create or update the django-q2 schedules declared in sync/schedules.py (idempotent)."

    def handle(self, *args, **options):
        applied, removed = schedules_apply()
        self.stdout.write(f"{applied} schedule(s) applied, {removed} stale one(s) removed.")
