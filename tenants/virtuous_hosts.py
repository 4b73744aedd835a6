"""Where a tenant's Virtuous API token may be sent: only to hosts in ``VIRTUOUS_ALLOWED_HOSTS``.

The token goes out as a Bearer header to ``virtuous_base_url``, so that URL is an allow-list
choice, not free text: Virtuous's own API host by default, plus the in-process sandbox's hosts
while ``SANDBOX_ENABLED``. Entries are ``host`` (any port) or ``host:port``; a real Virtuous host
must be reached over https.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError


def allowed_hosts() -> list[str]:
    hosts = [h.strip().lower() for h in settings.VIRTUOUS_ALLOWED_HOSTS if h.strip()]
    if settings.SANDBOX_ENABLED:
        hosts += [h.strip().lower() for h in settings.VIRTUOUS_SANDBOX_HOSTS if h.strip()]
    return hosts


def virtuous_base_url_problem(url: str) -> str:
    """Why ``url`` may not be a tenant's Virtuous base URL ("" when it may; blank means the default)."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        return f"{url!r} is not a valid URL."
    if parts.scheme not in ("http", "https") or not host:
        return f"{url!r} is not an http(s) URL."
    if parts.username or parts.password:
        return "The Virtuous base URL may not carry a user name or password."
    allowed = allowed_hosts()
    shown = f"[{host}]" if ":" in host else host
    if shown not in allowed and f"{shown}:{port}" not in allowed:
        return (
            f"{host!r} is not an allowed Virtuous host (allowed: {', '.join(allowed) or 'none'}). "
            "Operators extend VIRTUOUS_ALLOWED_HOSTS when Virtuous names another API host."
        )
    sandbox = settings.SANDBOX_ENABLED and (
        shown in settings.VIRTUOUS_SANDBOX_HOSTS or f"{shown}:{port}" in settings.VIRTUOUS_SANDBOX_HOSTS
    )
    if parts.scheme != "https" and not sandbox:
        return "The Virtuous API must be reached over https."
    return ""


def virtuous_base_url_validate(url: str) -> None:
    problem = virtuous_base_url_problem(url)
    if problem:
        raise ValidationError({"virtuous_base_url": problem})
