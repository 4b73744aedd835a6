"""Error reports to Sentry (or any service that speaks its protocol) when ``SENTRY_DSN`` is set.

sentry-sdk's Django integration reports unhandled errors in views; its logging integration turns
ERROR log records into events, which is how a failed django-q2 task (logged by the cluster) and
every worker-side error reach it. Nothing personal or secret leaves the process: ``send_default_pii``
stays off, request bodies (webhook bodies are donor records) and cookies are dropped, and
:func:`scrub_event` masks, at any depth, values under secret-like or donor-like keys, and e-mail
addresses and bearer tokens inside any string (exception messages, log messages, frame locals).
"""

from __future__ import annotations

import re
from typing import Any

MASK = "[Filtered]"
# Keys whose values are credentials, or a donor's personal data, wherever they appear.
_SECRET_KEY = re.compile(
    r"(secret|token|passw|api[-_]?key|authori[sz]ation|signature|credential|cookie|session|dsn|private|fernet)",
    re.IGNORECASE,
)
_PII_KEY = re.compile(
    r"^(e[-_]?mail(_address)?|emails?|first[-_]?name|last[-_]?name|full[-_]?name|name|given_?name|family_?name|"
    r"phone(_number)?|mobile|address(1|2|_line_?\d)?|street|city|postal(_code)?|zip(_code)?|postcode|"
    r"birth_?date|date_of_birth|fname|lname|billing_.*|donor|buyer|supporter|contact|merge_fields|"
    r"ip_address|remote_addr|user)$",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}")
_KNOWN_SECRET = re.compile(r"\b(sk|rk|pk|whsec)_(live|test)?_?[A-Za-z0-9]{8,}|\bgAAAAA[A-Za-z0-9_=-]{20,}")
_URL_CREDENTIALS = re.compile(r"(\w+://)[^/\s:@]+:[^/\s@]+@")


def scrub_text(text: str) -> str:
    text = _EMAIL.sub(MASK, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _KNOWN_SECRET.sub(MASK, text)
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{MASK}@", text)


def _scrub(value: Any, key: str = "") -> Any:
    if key and (_SECRET_KEY.search(key) or _PII_KEY.match(key)):
        return MASK if value not in (None, "", [], {}) else value
    if isinstance(value, dict):
        return {k: _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


def scrub_event(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """``before_send``: drop request bodies, cookies and user, then mask every value left."""
    request = event.get("request")
    if isinstance(request, dict):
        for field in ("data", "cookies"):
            if request.get(field):
                request[field] = MASK
        if request.get("query_string"):
            request["query_string"] = MASK
        if isinstance(request.get("url"), str):
            # Webhook URLs carry the connection's token, and for some providers a secret.
            request["url"] = re.sub(r"/hooks/.*", "/hooks/" + MASK, request["url"])
    event.pop("user", None)
    # Breadcrumbs hold earlier log lines and SQL; keep their shape, mask their values.
    return _scrub(event)


def sentry_init(*, dsn: str, environment: str, release: str, traces_sample_rate: float) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release or None,
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=True,
        traces_sample_rate=traces_sample_rate,
        before_send=scrub_event,
        before_send_transaction=scrub_event,
        integrations=[DjangoIntegration(), LoggingIntegration(event_level="ERROR")],
    )
