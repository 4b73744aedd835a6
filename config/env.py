"""The one environment reader for the whole project.

django-environ's ``env.bool`` reads any unknown word as ``False``; for switches that guard
safety (``DEBUG``, private-network access, the sandbox) a typo must stop startup instead, so
those go through :func:`strict_bool`. Secrets may come from ``NAME_FILE`` (a mounted secret)
instead of ``NAME``.
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# A local .env (written by `make run` for the demo, ignored by git) is read if present;
# real environment variables always win over it.
_dotenv = Path(env.str("GIFTLINE_ENV_FILE", default=str(BASE_DIR / ".env")))
if _dotenv.is_file():
    environ.Env.read_env(str(_dotenv), overwrite=False)

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def strict_bool(name: str, *, default: bool) -> bool:
    """Read a boolean that must be spelled correctly: anything but true/false words is an error."""
    raw = env.str(name, default="")
    if raw == "":
        return default
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean. Use one of: {', '.join(sorted(_TRUE | _FALSE))}."
    )


def secret(name: str, *, default: str | None = None) -> str | None:
    """Read a secret from ``NAME`` or from the file named by ``NAME_FILE`` (not both)."""
    value = env.str(name, default="")
    file_name = env.str(f"{name}_FILE", default="")
    if value and file_name:
        raise ImproperlyConfigured(f"Set either {name} or {name}_FILE, not both.")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc}") from exc
    return value or default
