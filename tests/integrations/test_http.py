import logging
import pathlib

import pytest
import requests
import responses

from integrations.common.http import UnsafeURLError, check_url_allowed, http_session, redact_headers

ROOT = pathlib.Path(__file__).resolve().parents[2]


@responses.activate
def test_session_sets_user_agent_timeout_and_logs_without_secrets(caplog, settings):
    responses.get("https://api.example.org/x", json={}, headers={"X-Request-Id": "req-1"})
    session = http_session(log_context={"tenant": "alpha"})
    with caplog.at_level(logging.INFO, logger="giftline.http"):
        session.get("https://api.example.org/x?token=abc", headers={"Authorization": "Bearer s3cret"})
    sent = responses.calls[0].request
    assert sent.headers["User-Agent"] == settings.HTTP_USER_AGENT
    assert "tenant=alpha" in caplog.text and "req-1" in caplog.text
    assert "s3cret" not in caplog.text and "token=abc" not in caplog.text


def test_timeout_none_is_refused():
    with pytest.raises(ValueError, match="timeout is mandatory"):
        http_session().get("https://api.example.org/", timeout=None)


def test_redact_headers():
    assert redact_headers(
        {"Authorization": "Bearer x", "Stripe-Signature": "t=1,v1=a", "Accept": "json"}
    ) == {
        "Authorization": "[redacted]",
        "Stripe-Signature": "[redacted]",
        "Accept": "json",
    }


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/x",
        "http://localhost/x",
        "http://10.0.0.5/",
        "http://169.254.169.254/latest",
        "ftp://example.org/",
    ],
)
def test_private_and_odd_urls_are_refused_unless_allowed(settings, url):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    with pytest.raises(UnsafeURLError):
        check_url_allowed(url)


def test_guarded_session_refuses_before_sending(settings):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    with pytest.raises(UnsafeURLError), responses.RequestsMock() as mock:
        http_session(guard_urls=True).post("http://127.0.0.1:9/hook", json={})
        assert len(mock.calls) == 0


def test_loopback_allowed_when_setting_on(settings):
    settings.ALLOW_PRIVATE_NETWORK_URLS = True
    check_url_allowed("http://127.0.0.1:8000/x")


def test_only_the_wrapper_uses_requests_directly():
    direct_calls = (
        "requests.get(",
        "requests.post(",
        "requests.put(",
        "requests.delete(",
        "requests.request(",
        "requests.Session(",
    )
    offenders = []
    for path in ROOT.glob("*/**/*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in {".venv", "tests", "bench"} or rel.as_posix() == "integrations/common/http.py":
            continue
        if any(call in path.read_text() for call in direct_calls):
            offenders.append(str(rel))
    assert offenders == []


def test_requests_is_the_transport():
    assert isinstance(http_session(), requests.Session)
