"""Logging for every process (web, qcluster, commands, gunicorn's own loggers) in one place.

``LOG_FORMAT=kv`` (the default) prints ``time LEVEL logger message key=value…``; ``LOG_FORMAT=json``
prints one JSON object a line through python-json-logger. Either way each line carries what is known
about the work in hand: the tenant's slug, the connection, the item or event, the request id and the
django-q2 task. These come from a context variable that the receive view, the drains and the task
hooks set (:func:`log_context`), so a call site never has to repeat them in its message.

URL-path secrets (Mailchimp and Constant Contact webhooks) are masked by
``config.logfilters.PathSecretFilter``, on the console handler and on every logger that prints a
path (``django.request``, ``django.server``, gunicorn's access and error logs).
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

# The fields a line may carry, in the order the key=value format prints them.
CONTEXT_FIELDS = ("tenant", "connection", "item", "event", "request_id", "task")
# The hook for issue 15's filter that masks secrets in URL paths; used only when it exists.
_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("giftline_log_context")


def _current() -> dict[str, str]:
    return _context.get({})


F = TypeVar("F", bound=Callable[..., Any])


def log_context_get() -> dict[str, str]:
    return dict(_current())


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields (``None`` and empty values are skipped) to every log line within the block."""
    added = {k: str(v) for k, v in fields.items() if v not in (None, "")}
    token = _context.set({**_current(), **added})
    try:
        yield
    finally:
        _context.reset(token)


def log_context_bind(**fields: Any) -> None:
    """Add fields until :func:`log_context_clear`: for code with no block to wrap (a task hook,
    a view that learns the tenant half-way)."""
    added = {k: str(v) for k, v in fields.items() if v not in (None, "")}
    _context.set({**_current(), **added})


def log_context_clear() -> None:
    _context.set({})


def tenant_log_context(func: F) -> F:
    """Decorator: the call's ``tenant=`` keyword argument (a Tenant) names the tenant in its logs.
    Safe in thread pools: the fields are removed again when the call returns."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tenant = kwargs.get("tenant")
        with log_context(tenant=getattr(tenant, "slug", None)):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def event_log_context(func: F) -> F:
    """Decorator: the call's ``event=`` keyword argument (an InboundEvent) names its tenant,
    connection and event in the logs of the call."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from config.metrics import tenant_label

        event = kwargs.get("event")
        fields = {}
        if event is not None:
            fields = {
                "tenant": tenant_label(event.tenant_id),
                "connection": getattr(event.connection, "public_id", None),
                "event": event.public_id,
            }
        with log_context(**fields):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class ContextFilter(logging.Filter):
    """Copies the current log context onto the record (as attributes, and as ``context_kv``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _current()
        for name in CONTEXT_FIELDS:
            if name in context and not hasattr(record, name):
                setattr(record, name, context[name])
        record.context_kv = "".join(
            f" {name}={getattr(record, name)}" for name in CONTEXT_FIELDS if getattr(record, name, None)
        )
        return True


class GiftlineJsonFormatter(JsonFormatter):
    """python-json-logger with fixed field names: time, level, logger, message, then the context
    fields and any ``extra=`` a call passed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s")
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "context_kv"])
        kwargs.setdefault("datefmt", "%Y-%m-%dT%H:%M:%S%z")
        super().__init__(*args, **kwargs)


def logging_config(
    *, level: str = "INFO", log_format: str = "kv", q_level: str = "WARNING", gunicorn: bool = False
) -> dict[str, Any]:
    """The ``LOGGING`` dict of the settings, and (``gunicorn=True``) gunicorn's ``logconfig_dict``."""
    if log_format not in ("kv", "json"):
        raise ValueError(f"LOG_FORMAT={log_format!r}; use kv or json.")
    filters: dict[str, Any] = {
        "path_secrets": {"()": "config.logfilters.PathSecretFilter"},
        "context": {"()": "config.logconfig.ContextFilter"},
    }
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": filters,
        "formatters": {
            "kv": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s%(context_kv)s"},
            "json": {"()": "config.logconfig.GiftlineJsonFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                # Masking first, so no formatter ever sees a path secret.
                "filters": ["path_secrets", "context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            "django_q": {"level": q_level},
            # The loggers that print request paths mask them on the logger itself, so a handler
            # added later (Sentry's, a test's) never sees a path secret either.
            "django.request": {"filters": ["path_secrets"]},
            # Replaces Django's own django.server handler, which would print the raw request line.
            "django.server": {
                "handlers": ["console"],
                "level": "INFO",
                "filters": ["path_secrets"],
                "propagate": False,
            },
        },
    }
    if gunicorn:
        # gunicorn's own loggers (its errors, and the access log when accesslog is set) through
        # the same handler, so they are JSON and masked too; it merges this over its defaults.
        config["loggers"].update(
            {
                "gunicorn.error": {
                    "level": level,
                    "handlers": ["console"],
                    "filters": ["path_secrets"],
                    "propagate": False,
                },
                "gunicorn.access": {
                    "level": "INFO",
                    "handlers": ["console"],
                    "filters": ["path_secrets"],
                    "propagate": False,
                },
            }
        )
        config["root"] = {"handlers": ["console"], "level": level}
    return config
