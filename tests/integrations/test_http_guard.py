"""The private-address guard against the attacks it exists for: redirects, DNS rebinding, disguised addresses.

Real sockets on 127.0.0.0/8 play the attacker's servers. The only loophole opened for them is
the ``treat_127_0_0_1_as_public`` seam: 127.0.0.1 exactly counts as public, every other
address (127.0.0.2, 169.254.169.254, ...) is judged by the real guard.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from integrations.common import http
from integrations.common.http import UnsafeURLError, check_url_allowed, http_session

PUBLIC_TEST_ADDRESS = ipaddress.ip_address("127.0.0.1")


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request with the server's ``reply`` (status, headers) and records it."""

    def do_GET(self) -> None:
        self.server.seen.append({"path": self.path, "host": self.headers.get("Host")})
        status, headers = self.server.reply
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_POST = do_GET

    def log_message(self, *args) -> None:
        pass


def _serve(address: str, reply: tuple[int, dict[str, str]], tls: ssl.SSLContext | None = None, port: int = 0):
    server = ThreadingHTTPServer((address, port), _Recorder)
    server.seen = []
    server.reply = reply
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture
def servers() -> Iterator[list]:
    started: list = []
    yield started
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture
def guard_on(settings, monkeypatch):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    real = http.address_refusal
    monkeypatch.setattr(
        http, "address_refusal", lambda address: "" if address == PUBLIC_TEST_ADDRESS else real(address)
    )


def _fake_dns(monkeypatch, answers: dict[str, list[str]]) -> dict[str, int]:
    """Replace the system resolver: each name answers from its list in turn (the last one repeats)."""
    real = socket.getaddrinfo
    calls: dict[str, int] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        n = calls.get(host, 0)
        calls[host] = n + 1
        address = answers[host][min(n, len(answers[host]) - 1)]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",  # 127.0.0.1 as one decimal integer
        "http://0x7f000001/",  # ... as hex
        "http://017700000001/",  # ... as octal
        "http://0177.0.0.1/",  # octal dotted
        "http://0x7f.1/",  # mixed short form
        "http://127.1/",
        "http://0xA9FEA9FE/",  # 169.254.169.254
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",  # IPv4-mapped IPv6
        "http://[::ffff:7f00:1]/",
        "http://[::127.0.0.1]/",  # IPv4-compatible IPv6
        "http://[2002:a9fe:a9fe::1]/",  # 6to4 wrapping the metadata address
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 wrapping it
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://[fd12:3456::1]/",  # unique-local
        "http://[fec0::1]/",  # site-local
        "http://[ff02::1]/",
        "http://224.0.0.251/",  # multicast
        "http://0.0.0.0/",
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://240.0.0.1/",  # reserved
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://10.0.0.1/",
    ],
)
def test_every_non_public_form_is_refused(settings, url):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    with pytest.raises(UnsafeURLError):
        check_url_allowed(url)


def test_a_name_with_any_private_answer_is_refused(settings, monkeypatch):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    monkeypatch.setattr(http, "resolve_host", lambda host, port: ["93.184.216.34", "10.0.0.7"])
    with pytest.raises(UnsafeURLError, match="10.0.0.7"):
        check_url_allowed("https://mixed.example/")


def test_a_public_name_returns_the_address_to_connect_to(settings, monkeypatch):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    monkeypatch.setattr(http, "resolve_host", lambda host, port: ["93.184.216.34"])
    assert check_url_allowed("https://example.org/") == ipaddress.ip_address("93.184.216.34")


def test_redirect_to_the_metadata_address_is_refused(guard_on, servers):
    redirector = _serve("127.0.0.1", (307, {"Location": "http://169.254.169.254/latest/meta-data/"}))
    servers.append(redirector)
    with pytest.raises(UnsafeURLError, match="169.254.169.254"):
        http_session(guard_urls=True).get(f"http://127.0.0.1:{redirector.server_port}/hook")
    assert [r["path"] for r in redirector.seen] == ["/hook"]


def test_redirect_to_a_name_that_resolves_privately_is_refused(guard_on, servers, monkeypatch):
    internal = _serve("127.0.0.2", (200, {}))
    servers.append(internal)
    _fake_dns(monkeypatch, {"internal.example": ["127.0.0.2"]})
    redirector = _serve(
        "127.0.0.1", (307, {"Location": f"http://internal.example:{internal.server_port}/admin"})
    )
    servers.append(redirector)
    with pytest.raises(UnsafeURLError, match="127.0.0.2"):
        http_session(guard_urls=True).post(f"http://127.0.0.1:{redirector.server_port}/hook", json={})
    assert internal.seen == []


def test_redirect_between_public_addresses_is_followed(guard_on, servers):
    target = _serve("127.0.0.1", (200, {}))
    servers.append(target)
    redirector = _serve("127.0.0.1", (307, {"Location": f"http://127.0.0.1:{target.server_port}/moved"}))
    servers.append(redirector)
    response = http_session(guard_urls=True).get(f"http://127.0.0.1:{redirector.server_port}/hook")
    assert response.status_code == 200
    assert [r["path"] for r in target.seen] == ["/moved"]


def test_rebinding_dns_cannot_steer_the_connection(guard_on, servers, monkeypatch):
    """The name answers a public address to the check, then a private one: we connect to the first."""
    # Both listen on one port, so only the address the socket opens decides who is reached.
    internal = _serve("127.0.0.2", (200, {}))
    port = internal.server_port
    public = _serve("127.0.0.1", (200, {}), port=port)
    servers.extend([public, internal])
    calls = _fake_dns(monkeypatch, {"rebind.example": ["127.0.0.1", "127.0.0.2"]})

    response = http_session(guard_urls=True).get(f"http://rebind.example:{port}/x")

    assert response.status_code == 200
    assert public.seen == [{"path": "/x", "host": f"rebind.example:{port}"}]
    assert internal.seen == []
    assert calls["rebind.example"] == 1


def _tls_context(tmp_path, name: str) -> tuple[ssl.SSLContext, str]:
    """A server context with a certificate for ``name`` signed by a throwaway CA; returns the CA file too."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = tmp_path / f"{name}.pem"
    pem.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ca_file = tmp_path / f"{name}-ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    return context, str(ca_file)


def test_tls_to_a_pinned_address_still_verifies_the_name(guard_on, servers, monkeypatch, tmp_path):
    context, ca_file = _tls_context(tmp_path, "pinned.example")
    server = _serve("127.0.0.1", (200, {}), tls=context)
    servers.append(server)
    _fake_dns(monkeypatch, {"pinned.example": ["127.0.0.1"], "impostor.example": ["127.0.0.1"]})
    port = server.server_port

    ok = http_session(guard_urls=True).get(f"https://pinned.example:{port}/x", verify=ca_file)
    assert ok.status_code == 200
    assert server.seen[-1]["host"] == f"pinned.example:{port}"

    # The same server under another name: the certificate does not match, so the call fails.
    with pytest.raises(requests.exceptions.SSLError):
        http_session(guard_urls=True).get(f"https://impostor.example:{port}/x", verify=ca_file)


def test_allow_private_network_urls_skips_the_check(settings):
    settings.ALLOW_PRIVATE_NETWORK_URLS = True
    assert check_url_allowed("http://127.0.0.1:8000/x") is None
    with pytest.raises(UnsafeURLError, match="Not an http"):
        check_url_allowed("file:///etc/passwd")


def test_an_api_request_is_guarded_and_pinned_like_any_call(guard_on, servers, monkeypatch, settings):
    # a private address is refused before anything is sent
    with pytest.raises(UnsafeURLError, match="169.254.169.254"):
        http_session(guard_urls=True).api_request("GET", "http://169.254.169.254/latest/meta-data/")
    # a redirect to one is answered, never followed
    redirector = _serve("127.0.0.1", (307, {"Location": "http://169.254.169.254/latest/meta-data/"}))
    internal = _serve("127.0.0.2", (200, {}))
    port = internal.server_port
    public = _serve("127.0.0.1", (200, {}), port=port)
    servers.extend([redirector, internal, public])
    response = http_session(guard_urls=True).api_request(
        "POST", f"http://127.0.0.1:{redirector.server_port}/hook", data=b"{}"
    )
    assert response.status_code == 307 and [r["path"] for r in redirector.seen] == ["/hook"]
    # and the socket opens to the address that was checked, whatever the name answers next
    _fake_dns(monkeypatch, {"rebind.example": ["127.0.0.1", "127.0.0.2"]})
    assert (
        http_session(guard_urls=True).api_request("GET", f"http://rebind.example:{port}/x").status_code == 200
    )
    assert public.seen == [{"path": "/x", "host": f"rebind.example:{port}"}] and internal.seen == []
