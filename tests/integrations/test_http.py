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


ENVIRONMENTS = {
    "none": {},
    "proxy": {"HTTPS_PROXY": "http://proxy.internal:3128", "HTTP_PROXY": "http://proxy.internal:3128"},
    "proxy bypassed": {"HTTPS_PROXY": "http://proxy.internal:3128", "NO_PROXY": "api.example.org"},
    "ca bundle": {"REQUESTS_CA_BUNDLE": "/etc/ssl/bundle.pem"},
    "curl ca bundle": {"CURL_CA_BUNDLE": "/etc/ssl/curl.pem"},
}
CALLS = [
    ({}, None, None, None),
    ({}, False, False, None),
    ({"no_proxy": "example.org"}, None, "/mine.pem", ("c.pem", "k.pem")),
    (None, True, True, None),
]


@pytest.mark.parametrize("environment", ENVIRONMENTS.values(), ids=ENVIRONMENTS.keys())
@pytest.mark.parametrize("trust_env", [True, False])
def test_environment_settings_merge_as_requests_merges_them(monkeypatch, environment, trust_env):
    """Ours reads the environment once per host; what it merges must be what requests' own
    merge gives, for every call of a session and after the first."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    ours, theirs = http_session(), requests.Session()
    theirs.headers = ours.headers
    for session in (ours, theirs):
        session.trust_env = trust_env
        session.proxies = {"http": "http://session-proxy:8080"}
    for url in ("https://api.example.org/a", "https://api.example.org/b", "http://other.example.net/"):
        for proxies, stream, verify, cert in CALLS:
            mine = ours.merge_environment_settings(url, _copy(proxies), stream, verify, cert)
            expected = theirs.merge_environment_settings(url, _copy(proxies), stream, verify, cert)
            assert mine == expected, (url, proxies, verify)


def _copy(proxies):
    return dict(proxies) if proxies is not None else None


def test_the_environment_is_read_once_per_host(monkeypatch):
    reads = []
    real = requests.utils.get_environ_proxies

    def counting(url, no_proxy=None):
        reads.append(url)
        return real(url, no_proxy=no_proxy)

    monkeypatch.setattr("integrations.common.http.get_environ_proxies", counting)
    session = http_session()
    for path in ("a", "b", "c"):
        session.merge_environment_settings(f"https://api.example.org/{path}", {}, None, None, None)
    session.merge_environment_settings("https://other.example.net/", {}, None, None, None)
    assert reads == ["https://api.example.org/a", "https://other.example.net/"]
    http_session().merge_environment_settings("https://api.example.org/d", {}, None, None, None)
    assert len(reads) == 3  # a new session reads it again


class _RecordingAdapter(requests.adapters.HTTPAdapter):
    """Answers 200 to everything and keeps what it was asked to send, and how."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple] = []

    def send(self, request, **kwargs):
        self.sent.append((request.method, request.url, dict(request.headers), request.body, kwargs))
        response = requests.Response()
        response.status_code, response._content, response.request = 200, b"{}", request
        return response


API_CALLS = [
    ("GET", "https://api.example.org/Contact/7", None, None, {"Accept": "application/json"}),
    ("POST", "https://api.example.org/Gift/Query", {"skip": 0, "take": 100}, b'{"groups":[]}', {"X-Id": "1"}),
    ("PUT", "http://other.example.net/x?y=1", {"z": "two words"}, b"{}", {"User-Agent": "mine"}),
]


@pytest.mark.parametrize("environment", ENVIRONMENTS.values(), ids=ENVIRONMENTS.keys())
@pytest.mark.parametrize("trust_env", [True, False])
def test_an_api_request_sends_what_a_session_request_sends(monkeypatch, environment, trust_env):
    """The lean path prepares the same request and hands the adapter the same settings as
    ``request(..., allow_redirects=False)`` on a session without cookies."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    session = http_session()
    session.trust_env = trust_env
    adapter = _RecordingAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    for method, url, params, data, headers in API_CALLS:
        session.request(
            method, url, params=params, data=data, headers=headers, timeout=(1, 2), allow_redirects=False
        )
        session.api_request(method, url, params=params, data=data, headers=headers, timeout=(1, 2))
    assert len(adapter.sent) == 2 * len(API_CALLS)
    for theirs, ours in zip(adapter.sent[::2], adapter.sent[1::2], strict=True):
        assert ours == theirs


@responses.activate
def test_an_api_request_logs_like_any_call_and_needs_a_timeout(caplog, settings):
    responses.post("https://api.example.org/x", json={}, status=302, headers={"Location": "/elsewhere"})
    session = http_session(log_context={"tenant": "alpha"})
    with caplog.at_level(logging.INFO, logger="giftline.http"):
        response = session.api_request(
            "POST", "https://api.example.org/x?token=abc", headers={"Authorization": "Bearer s3cret"}
        )
    assert response.status_code == 302 and len(responses.calls) == 1  # answered, not followed
    assert responses.calls[0].request.headers["User-Agent"] == settings.HTTP_USER_AGENT
    assert "status=302" in caplog.text and "tenant=alpha" in caplog.text
    assert "s3cret" not in caplog.text and "token=abc" not in caplog.text
    with pytest.raises(ValueError, match="timeout is mandatory"):
        session.api_request("GET", "https://api.example.org/", timeout=None)
