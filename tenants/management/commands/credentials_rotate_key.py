from django.core.management.base import BaseCommand, CommandError

from tenants import services
from tenants.crypto import CredentialDecryptError
from tenants.management.base import CLI


class Command(BaseCommand):
    help = (
        "Re-encrypt every credential under the newest key. Put the new key first in CREDENTIAL_KEYS, "
        "keep the old ones after it, run this, then drop the old keys."
    )

    def handle(self, *args, **options):
        try:
            count = services.credentials_rotate_key(actor=CLI)
        except CredentialDecryptError as exc:
            raise CommandError(
                f"A credential could not be decrypted with any configured key ({exc}); "
                "keep every old key in CREDENTIAL_KEYS until rotation completes."
            ) from exc
        self.stdout.write(f"Re-encrypted {count} credential(s) under the newest key.")
