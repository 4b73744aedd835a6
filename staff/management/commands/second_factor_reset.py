from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from staff.second_factor import second_factor_reset
from tenants.management.base import CLI


class Command(BaseCommand):
    help = (
        "Remove a staff user's second-factor devices (authenticator app and recovery codes), e.g. after a "
        "lost phone. They set it up again at their next login; the reset is audited."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, **options):
        try:
            user = get_user_model().objects.get_by_natural_key(options["username"])
        except get_user_model().DoesNotExist as exc:
            raise CommandError(f"No user {options['username']!r}.") from exc
        count = second_factor_reset(user=user, actor=CLI)
        self.stdout.write(f"Removed {count} second-factor device(s) of {user.get_username()}.")
