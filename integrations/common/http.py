"""The one HTTP wrapper. Every outbound call of the platform goes through ``http_session()``.

It sets a mandatory timeout and our user agent, refuses tenant-supplied URLs that point at
private or loopback networks (unless ``ALLOW_PRIVATE_NETWORK_URLS``), and logs each call with
the tenant and request id while redacting ``Authorization`` and other secret headers.
A test checks that no other module imports ``requests`` to make calls.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings

logger = logging.getLogger("giftline.http")

DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})


class UnsafeURLError(ValueError):
    """A tenant-supplied URL points somewhere the platform must not call."""


def redact_headers(headers: dict[str, Any] | None) -> dict[str, str]:
    return {
        k: (
            "[redacted]"
            if k.lower() in SECRET_HEADERS or "signature" in k.lower() or "secret" in k.lower()
            else str(v)
        )
        for k, v in (headers or {}).items()
    }


def check_url_allowed(url: str) -> None:
    """Refuse non-HTTP(S) URLs, and private/loopback/link-local targets unless allowed by settings."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURLError(f"Not an http(s) URL: {url!r}")
    if settings.ALLOW_PRIVATE_NETWORK_URLS:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except socket.gaierror as exc:
        raise UnsafeURLError(f"Cannot resolve {parts.hostname!r}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_reserved
            or address.is_multicast
            or address.is_unspecified
        ):
            raise UnsafeURLError(f"{parts.hostname!r} resolves to a non-public address ({address}).")


class HttpSession(requests.Session):
    """A session that always has a timeout, our user agent, and redacted structured logs."""

    def __init__(self, *, log_context: dict[str, Any] | None = None, guard_urls: bool = False) -> None:
        super().__init__()
        self.headers["User-Agent"] = settings.HTTP_USER_AGENT
        self.log_context = dict(log_context or {})
        self.guard_urls = guard_urls

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
        if kwargs["timeout"] is None:
            raise ValueError("A timeout is mandatory for outbound HTTP calls.")
        if self.guard_urls:
            check_url_allowed(url)
        started = time.monotonic()
        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.RequestException as exc:
            logger.warning(
                "http.error method=%s url=%s error=%s duration_ms=%d %s",
                method,
                _strip_query(url),
                type(exc).__name__,
                (time.monotonic() - started) * 1000,
                _context(self.log_context),
            )
            raise
        logger.info(
            "http.call method=%s url=%s status=%s duration_ms=%d request_id=%s %s",
            method,
            _strip_query(url),
            response.status_code,
            (time.monotonic() - started) * 1000,
            response.headers.get("X-Request-Id", "-"),
            _context(self.log_context),
        )
        return response


def http_session(*, log_context: dict[str, Any] | None = None, guard_urls: bool = False) -> HttpSession:
    """Build a session; pass ``guard_urls=True`` whenever a tenant supplied the URL."""
    return HttpSession(log_context=log_context, guard_urls=guard_urls)


def _strip_query(url: str) -> str:
    # Query strings can carry tokens (e.g. Mailchimp's webhook secret); never log them.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _context(ctx: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in ctx.items())
