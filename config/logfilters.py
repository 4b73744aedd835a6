"""Keep secrets that travel in URLs out of every log line.

Mailchimp and Constant Contact webhooks authenticate with a secret in the URL path
(``/hooks/<token>/<secret>/``, see ``integrations/urls.py``). Django's request logger prints the
path of every 4xx/5xx, the development server and gunicorn print every request line, so each
of them gets :class:`PathSecretFilter`. The connection token before the secret stays visible:
it names the connection for operators and authenticates nothing on its own.

This module imports nothing of ours and no Django app, so logging can load it first thing.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
# /hooks/<uuid token>/<path secret>: the secret is the segment after the token.
_PATH_SECRET = re.compile(
    r"(/hooks/[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}/)"
    r"[^/?#\s\"'<>]+"
)
# Query parameters that carry credentials (a sender may append one to any URL).
_QUERY_SECRET = re.compile(
    r"([?&](?:secret|token|api_key|apikey|key|access_token|signature|password)=)[^&#\s\"'<>]+",
    re.IGNORECASE,
)


def mask_path_secrets(text: str) -> str:
    """``text`` with webhook path secrets and credential query parameters replaced by a mask."""
    if "/hooks/" not in text and "=" not in text:
        return text
    return _QUERY_SECRET.sub(rf"\1{REDACTED}", _PATH_SECRET.sub(rf"\1{REDACTED}", text))


class PathSecretFilter(logging.Filter):
    """Rewrite a record's message with its URL secrets masked (never drops a record).

    Attach it to the loggers that print paths (``django.request``, ``django.server``,
    ``gunicorn.access``): a logger's own filter runs before any handler, so every handler and
    formatter (plain or JSON) downstream sees the masked message.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the formatter's to report, not ours to drop
            return True
        masked = mask_path_secrets(message)
        if masked != message:
            record.msg = masked
            record.args = ()
        # The development server and Django attach the request; a JSON formatter might dump it.
        for name in ("request_line", "path", "url", "uri"):
            value = getattr(record, name, None)
            if isinstance(value, str):
                setattr(record, name, mask_path_secrets(value))
        return True
