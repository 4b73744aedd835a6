"""Webhook path secrets never reach a log line, whatever the receiver answers.

Every outcome of the receive view (accepted, bad secret, unknown connection, oversized, wrong
content type, handshake) is sent three ways: through Django's test client (``django.request``),
through the real development server (``django.server``), and through gunicorn's access logger
configured with the dictionary the project ships for it. Every line each of them printed is
scanned for the secrets.
"""

from __future__ import annotations

import http.client
import io
import logging
import logging.config
import threading
import uuid
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer
from django.urls import reverse

from config.logconfig import logging_config
from config.logfilters import mask_path_secrets
from integrations.common.http import redact_headers
from tests.integrations.conftest import fixture_json

SECRET = "mc-path-secret-log-scan-7d1e4f"
WRONG = "wrong-secret-guess-0a9b8c7d"
CC_SECRET = "cc-path-secret-log-scan-3c2b1a"
FORM = "application/x-www-form-urlencoded"


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.name, record.getMessage()))


@pytest.fixture
def captured():
    """A handler on the root and on every logger that does not propagate to it."""
    capture = _Capture()
    loggers = [logging.getLogger(), logging.getLogger("django.server"), logging.getLogger("gunicorn.access")]
    for logger in loggers:
        logger.addHandler(capture)
    yield capture
    for logger in loggers:
        logger.removeHandler(capture)


@pytest.fixture
def requests_to_send(transactional_db, tenant, other_tenant, make_connection, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 4096
    mailchimp = make_connection(
        tenant, "mailchimp", secret=SECRET, settings={"audiences": {"a6b5da1054": "Supporters"}}
    )
    constant_contact = make_connection(
        other_tenant, "constant_contact", secret=CC_SECRET, capture_mode="hybrid"
    )
    good = urlencode(fixture_json("mailchimp", "subscribe.json")).encode()

    def url(connection, secret, token=None):
        return reverse("integrations:receive-with-secret", args=[token or connection.webhook_token, secret])

    # (label, method, path, body, content type, expected status)
    return [
        ("accepted", "POST", url(mailchimp, SECRET), good, FORM, 200),
        ("bad secret", "POST", url(mailchimp, WRONG), good, FORM, 400),
        ("unknown connection", "POST", url(mailchimp, SECRET, token=uuid.uuid4()), good, FORM, 404),
        ("oversized", "POST", url(mailchimp, SECRET), b"a=" + b"x" * 5000, FORM, 413),
        ("wrong content type", "POST", url(mailchimp, SECRET), b"{}", "application/json", 415),
        ("handshake, wrong secret", "GET", url(mailchimp, WRONG), b"", "", 403),
        (
            "constant contact, bad secret",
            "POST",
            url(constant_contact, WRONG),
            b"{}",
            "application/json",
            400,
        ),
    ]


def _assert_clean(lines: list[tuple[str, str]]) -> None:
    text = "\n".join(message for _, message in lines)
    for secret in (SECRET, WRONG, CC_SECRET):
        assert secret not in text, f"{secret} leaked into the logs:\n{text}"


def test_django_request_log_masks_every_outcome(client, requests_to_send, captured):
    for label, method, path, body, content_type, status in requests_to_send:
        if method == "GET":
            response = client.get(path)
        else:
            response = client.post(path, data=body, content_type=content_type)
        assert response.status_code == status, label
    request_lines = [line for line in captured.lines if line[0] == "django.request"]
    # Every 4xx was logged (so the scan saw them), with the secret masked.
    assert len(request_lines) == sum(1 for r in requests_to_send if r[5] >= 400)
    assert all("[redacted]" in message for _, message in request_lines)
    _assert_clean(captured.lines)


def test_development_server_log_masks_every_outcome(requests_to_send, captured):
    server = WSGIServer(("127.0.0.1", 0), WSGIRequestHandler)
    server.set_app(WSGIHandler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for label, method, path, body, content_type, status in requests_to_send:
            conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
            headers = {"Content-Type": content_type} if content_type else {}
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            assert response.status == status, label
    finally:
        server.shutdown()
        server.server_close()
    server_lines = [line for line in captured.lines if line[0] == "django.server"]
    assert len(server_lines) == len(requests_to_send)
    assert all("[redacted]" in message for _, message in server_lines)
    _assert_clean(captured.lines)


@pytest.fixture
def gunicorn_logger():
    """gunicorn's logger set up with the project's logconfig_dict; logging is restored afterwards."""
    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    names = ["", "gunicorn.access", "gunicorn.error"]
    saved = {
        name: (list(lg.handlers), list(lg.filters), lg.level, lg.propagate)
        for name in names
        for lg in [logging.getLogger(name)]
    }
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("logconfig_dict", logging_config(gunicorn=True))
    yield Logger(cfg)
    for name, (handlers, filters, level, propagate) in saved.items():
        lg = logging.getLogger(name)
        lg.handlers[:], lg.filters[:] = handlers, filters
        lg.setLevel(level)
        lg.propagate = propagate


def test_gunicorn_access_log_masks_every_outcome(requests_to_send, gunicorn_logger):
    # The handler the shipped dictionary installed (pytest adds its own capture handlers beside it).
    (handler,) = [
        h for h in logging.getLogger("gunicorn.access").handlers if type(h) is logging.StreamHandler
    ]
    written = io.StringIO()
    handler.setStream(written)
    for _label, method, path, _body, _content_type, status in requests_to_send:
        query = "token=" + WRONG
        environ = {
            "REQUEST_METHOD": method,
            "RAW_URI": f"{path}?{query}",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "203.0.113.9",
            "HTTP_REFERER": f"https://example.org{path}",
        }
        request = SimpleNamespace(headers=[("REFERER", f"https://example.org{path}")])
        response = SimpleNamespace(status=f"{status} X", headers=[], sent=2, response_length=2)
        gunicorn_logger.access(response, request, environ, timedelta(seconds=0.01))
    out = written.getvalue()
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == len(requests_to_send)
    assert all("[redacted]" in line for line in lines)
    _assert_clean([("gunicorn.access", out)])


def test_stored_headers_mask_path_secrets():
    path = f"/hooks/{uuid.uuid4()}/{SECRET}/"
    stored = redact_headers({"Referer": f"https://example.org{path}", "X-Original-Uri": path})
    assert SECRET not in str(stored)
    assert stored["X-Original-Uri"] == mask_path_secrets(path)
