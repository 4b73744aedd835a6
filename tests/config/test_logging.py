"""LOG_FORMAT=json: one JSON object a line, carrying what is known about the work in hand."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import re
from pathlib import Path

import pytest

from config.logconfig import (
    log_context,
    log_context_get,
    logging_config,
    tenant_log_context,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def json_lines():
    """Route a fresh logger through the project's JSON configuration into a buffer."""
    config = logging_config(log_format="json")
    stream = io.StringIO()
    config["handlers"]["console"]["stream"] = stream
    config["loggers"] = {"giftline.test": {"handlers": ["console"], "level": "INFO", "propagate": False}}
    config["root"] = {"level": "WARNING", "handlers": []}
    saved = logging.getLogger().handlers[:]
    logging.config.dictConfig(config)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    logging.getLogger().handlers[:] = saved


def test_a_json_line_carries_the_context_fields(json_lines):
    log = logging.getLogger("giftline.test")
    with log_context(tenant="alpha", item="0d5f", request_id="req-1", connection=None):
        log.info("outbound.submitted count=%d", 3, extra={"count": 3})
    log.info("outside")
    first, second = json_lines()
    assert first["message"] == "outbound.submitted count=3"
    assert first["level"] == "INFO" and first["logger"] == "giftline.test"
    assert first["tenant"] == "alpha" and first["item"] == "0d5f" and first["request_id"] == "req-1"
    assert first["count"] == 3
    assert "connection" not in first and "context_kv" not in first
    assert re.match(r"\d{4}-\d\d-\d\dT", first["time"])
    assert "tenant" not in second


def test_an_exception_is_kept_inside_its_one_line(json_lines):
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("giftline.test").exception("failed")
    [line] = json_lines()
    assert "ValueError: boom" in line["exc_info"]


def test_the_tenant_decorator_is_undone_after_the_call():
    class T:
        slug = "alpha"

    @tenant_log_context
    def work(*, tenant):
        return log_context_get()

    assert work(tenant=T()) == {"tenant": "alpha"}
    assert log_context_get() == {}


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logging_config(log_format="xml")


def test_the_path_secret_filter_masks_before_any_formatter():
    config = logging_config(log_format="json", gunicorn=True)
    handler = config["handlers"]["console"]
    assert config["filters"]["path_secrets"] == {"()": "config.logfilters.PathSecretFilter"}
    assert handler["filters"][0] == "path_secrets"
    for name in ("django.request", "django.server", "gunicorn.access", "gunicorn.error"):
        assert "path_secrets" in config["loggers"][name]["filters"], name
    # gunicorn's error and access logs go through the same handler (and so the same filters).
    assert config["loggers"]["gunicorn.access"]["handlers"] == ["console"]


@pytest.mark.django_db
def test_the_receive_view_logs_the_tenant_connection_and_request_id(client, tenant, caplog):
    from integrations.services import connection_create

    connection = connection_create(tenant=tenant, provider="donorbox", name="Donorbox")
    with caplog.at_level(logging.INFO, logger="giftline.capture"):
        response = client.post(
            f"/hooks/{connection.webhook_token}/",
            data=b"[]",
            content_type="application/json",
            HTTP_X_REQUEST_ID="abc-123",
        )
    assert response["X-Request-ID"] == "abc-123"
    [record] = [r for r in caplog.records if r.getMessage().startswith("webhook.received")]
    assert record.provider == "donorbox" and record.http_status == response.status_code
    from config.logconfig import ContextFilter

    ContextFilter().filter(record)
    assert (record.tenant, record.connection, record.request_id) == (
        "alpha",
        str(connection.public_id),
        "abc-123",
    )
    assert str(connection.webhook_token) not in record.getMessage()


@pytest.mark.django_db
def test_a_request_id_that_is_not_a_plain_token_is_replaced(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="x" * 65)
    assert response.status_code == 200
    response = client.get("/admin/login/", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_the_sample_env_file_lists_every_variable_the_settings_read():
    read = set()
    # settings_test.py is the test suite's own: what it reads (the fault point) never reaches production.
    production = [p for p in (ROOT / "config").glob("*.py") if p.name != "settings_test.py"]
    for path in [*production, ROOT / "deploy" / "gunicorn.conf.py"]:
        text = path.read_text()
        read |= set(re.findall(r"(?:env\.\w+|strict_bool|secret)\(\s*\"([A-Z][A-Z0-9_]+)\"", text))
        read |= set(re.findall(r"os\.environ\.get\(\"([A-Z][A-Z0-9_]+)\"", text))
    sample = (ROOT / "deploy" / "giftline.env.sample").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", sample, re.MULTILINE))
    assert len(read) > 60
    assert read - listed == set()
