"""Write a local ``.env`` for the demo (`make run`) with freshly generated secrets, once.

Generated keys never leave this machine: `.env` is ignored by git. An existing file is kept
as it is, so the demo's encrypted credentials stay readable across runs.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from cryptography.fernet import Fernet


def main(path: str = ".env") -> int:
    target = Path(path)
    if target.exists():
        return 0
    target.write_text(
        "\n".join(
            [
                "# Written by `make run` for the local demo. Not for production.",
                "DEBUG=true",
                f"SECRET_KEY={secrets.token_urlsafe(50)}",
                f"CREDENTIAL_KEYS={Fernet.generate_key().decode()}",
                "SANDBOX_ENABLED=true",
                "ALLOW_PRIVATE_NETWORK_URLS=true",
                "",
            ]
        )
    )
    target.chmod(0o600)
    sys.stdout.write(f"Wrote {target} with generated demo secrets.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
