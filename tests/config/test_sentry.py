"""Error reports: a local DSN pointing at a tiny HTTP server that records what would be sent.

Sentry's SDK is process-global, so the reporting side runs in a child process with SENTRY_DSN set;
this test holds the "Sentry" and reads the envelope it received.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import django, os
django.setup()
import sentry_sdk
from django.test import Client
from django.urls import path
from config import urls

def explode(request):
    api_token = "vt_live_SUPERSECRET_token_9f8e7d"
    donor = {"email": "ada@example.org", "first_name": "Ada", "last_name": "Lovelace", "amount": "25.00"}
    headers = {"Authorization": "Bearer vt_live_SUPERSECRET_token_9f8e7d"}
    raise RuntimeError(f"mapping failed for ada@example.org with Bearer {api_token}")

urls.urlpatterns.insert(0, path("explode/", explode))
from django.urls import clear_url_caches
clear_url_caches()
Client(raise_request_exception=False).post(
    "/explode/?email=ada@example.org",
    data='{"donor": {"email": "ada@example.org", "first_name": "Ada"}}',
    content_type="application/json",
    HTTP_AUTHORIZATION="Bearer vt_live_SUPERSECRET_token_9f8e7d",
    HTTP_COOKIE="sessionid=abcdef0123456789",
)
import logging
logging.getLogger("django_q").error("Failed [task] - ada@example.org whsec_abcdefghijklmnop")
sentry_sdk.flush(timeout=10)
"""


def test_errors_reach_sentry_with_donor_data_and_credentials_scrubbed(tmp_path):
    received: list[bytes] = []

    class Sentry(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            received.append(body)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sentry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings_test",
            "SENTRY_DSN": f"http://publickey@127.0.0.1:{server.server_port}/42",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        }
        result = subprocess.run(
            [sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, timeout=60
        )
        assert result.returncode == 0, result.stderr.decode()[-2000:]
    finally:
        server.shutdown()

    text = b"\n".join(received).decode("utf-8", "replace")
    events = []
    for envelope in received:
        for line in envelope.decode("utf-8", "replace").splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and ("exception" in item or "logentry" in item):
                events.append(item)
    assert any("exception" in e for e in events), text[:500]
    assert any("logentry" in e for e in events), "a worker-side ERROR log is reported too"
    exception = next(e for e in events if "exception" in e)
    assert exception["exception"]["values"][-1]["type"] == "RuntimeError"
    assert exception["request"].get("data") in (None, "", "[Filtered]")  # never the body
    for leaked in (
        "ada@example.org",
        "SUPERSECRET",
        "Lovelace",
        "abcdef0123456789",
        "whsec_abcdefghijklmnop",
    ):
        assert leaked not in text, f"{leaked} reached the error report"
