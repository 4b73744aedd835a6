"""The production profile, started as shipped: Procfile commands (release, web under gunicorn with
deploy/gunicorn.conf.py, the scheduler and a worker qcluster) with DEBUG=false, PostgreSQL and
Redis. Readiness goes green, a signed webhook goes through to the sandbox, /metrics shows it and a
JSON log line records it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from integrations.donorbox.webhooks import sign
from integrations.services import connection_create
from sync.models import OutboundItem
from tenants import services as tenant_services
from tenants.models import Credential
from tests.e2e.conftest import point_tenant_at_sandbox

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REDIS_DB = 11  # reserved for this test: flushed at its start
METRICS_TOKEN = "profile-test-metrics-token-0123456789"
DONORBOX_SECRET = "profile-test-donorbox-secret"

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line and not line.startswith("#"))


def _sample_env() -> dict[str, str]:
    """The uncommented assignments of the shipped sample file: the profile's base."""
    text = (ROOT / "deploy" / "giftline.env.sample").read_text()
    return dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", text, re.MULTILINE))


def _database_url() -> str:
    s = connection.settings_dict
    user = s["USER"] or "postgres"
    auth = f"{user}:{s['PASSWORD']}" if s.get("PASSWORD") else user
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _wait(predicate, *, seconds: float, what: str, logs: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))
    raise AssertionError(f"{what} did not happen within {seconds:.0f} s\n{tails}")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: the profile's database")
@pytest.mark.skipif(not _redis_up(), reason="needs Redis at 127.0.0.1:6379: the profile's broker")
def test_the_production_profile_takes_a_webhook_to_the_sandbox_and_reports_it(transactional_db, tmp_path):
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        # Only the basics of this environment: the test settings put their own defaults in it.
        **{k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "TMPDIR")},
        **_sample_env(),
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "GIFTLINE_ENV_FILE": "/nonexistent",
        "DEBUG": "false",
        "SECRET_KEY": "profile-test-" + "k" * 60,
        "CREDENTIAL_KEYS": ",".join(settings.CREDENTIAL_KEYS),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CSRF_TRUSTED_ORIGINS": base,
        "PUBLIC_BASE_URL": base,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
        "RATE_LIMIT_REDIS_PREFIX": f"giftline:profile-test:{uuid.uuid4().hex[:8]}:",
        # The sandbox is reached over plain HTTP on loopback, so HTTPS is not forced here; the
        # profile's own `check --deploy` (with it forced) is tested in tests/config.
        "SECURE_SSL_REDIRECT": "false",
        "SANDBOX_ENABLED": "true",
        "SANDBOX_ENABLED_ACKNOWLEDGED": "true",
        "ALLOW_PRIVATE_NETWORK_URLS": "true",
        "ALLOW_PRIVATE_NETWORK_URLS_ACKNOWLEDGED": "true",
        "LOG_FORMAT": "json",
        "METRICS_TOKEN": METRICS_TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "Q_WORKERS": "3",
        "PYTHONUNBUFFERED": "1",
    }
    tenant = tenant_services.tenant_create(slug="prod", name="Production Profile Nonprofit")
    tenant_services.tenant_create(slug="outsider", name="Outsider Nonprofit")
    point_tenant_at_sandbox(tenant, base)
    hook = connection_create(tenant=tenant, provider="donorbox", name="Donorbox", default_project_code="GEN")
    tenant_services.credential_set(
        tenant=tenant,
        platform="donorbox",
        purpose=Credential.Purpose.WEBHOOK_SECRET,
        secret=DONORBOX_SECRET,
        scope=hook.credential_scope,
    )

    procfile = _procfile()
    release = subprocess.run(
        ["bash", "-c", procfile["release"]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert release.returncode == 0, release.stdout + release.stderr
    started: list[subprocess.Popen] = []
    try:
        for name in ("web", "scheduler", "worker"):
            log = (tmp_path / f"{name}.log").open("wb")
            started.append(
                subprocess.Popen(
                    ["bash", "-c", f"exec {procfile[name]}"],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            )

        def ready() -> bool:
            try:
                return requests.get(f"{base}/readyz", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        _wait(ready, seconds=120, what="/readyz answering 200", logs=tmp_path)
        readiness = requests.get(f"{base}/readyz", timeout=5).json()
        assert set(readiness["checks"]) == {"database", "broker", "schedules", "clusters"}

        donation_id = str(uuid.uuid4().int % 10**9)
        body = json.dumps(
            [
                {
                    "id": int(donation_id),
                    "amount": "40.00",
                    "currency": "usd",
                    "status": "paid",
                    "donation_type": "stripe",
                    "donation_date": datetime.now(UTC).isoformat(),
                    "campaign": {"id": 1, "name": "Spring appeal"},
                    "donor": {
                        "id": 77,
                        "first_name": "Mary",
                        "last_name": "Jackson",
                        "email": "mj@example.org",
                    },
                }
            ]
        ).encode()
        answer = requests.post(
            f"{base}/hooks/{hook.webhook_token}/",
            data=body,
            headers={
                "Content-Type": "application/json",
                "Donorbox-Signature": sign(body, DONORBOX_SECRET, int(time.time())),
                "X-Request-ID": "profile-test-request-1",
            },
            timeout=10,
        )
        assert answer.status_code == 200, answer.text

        gift = OutboundItem.objects.filter(
            tenant=tenant, operation="gift_transaction", external_id=donation_id
        )
        _wait(
            lambda: gift.filter(state=OutboundItem.State.SUBMITTED).exists(),
            seconds=180,
            what="the gift submitted to the sandbox",
            logs=tmp_path,
        )

        assert requests.get(f"{base}/metrics", timeout=10).status_code == 403
        scrape = requests.get(
            f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
        )
        assert scrape.status_code == 200
        text = scrape.text
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

        def value(name: str, **labels: str) -> float:
            return samples.get((name, tuple(sorted(labels.items()))), 0.0)

        # Counted in a gunicorn worker, in a qcluster worker, and read from the database.
        assert value("giftline_webhooks_received_total", provider="donorbox", status_class="2xx") >= 1, text
        assert value("giftline_virtuous_calls_total", tenant="prod", status_class="2xx") >= 1, text
        assert value("giftline_queue_depth", tenant="prod", direction="outbound", state="submitted") >= 1, (
            text
        )
        assert value("giftline_budget_used", tenant="prod") >= 1
        assert value("giftline_qcluster_clusters") >= 2
        assert ("giftline_tenant_paused", (("tenant", "outsider"),)) in samples  # every tenant has its series
        assert "mj@example.org" not in text and donation_id not in text

        lines = []
        for raw in (tmp_path / "web.log").read_text().splitlines():
            with contextlib.suppress(ValueError):
                lines.append(json.loads(raw))
        received = [
            line
            for line in lines
            if isinstance(line, dict) and line.get("message", "").startswith("webhook.received")
        ]
        assert received, (tmp_path / "web.log").read_text()[-3000:]
        assert received[-1]["tenant"] == "prod"
        assert received[-1]["connection"] == str(hook.public_id)
        assert received[-1]["request_id"] == "profile-test-request-1"
        assert received[-1]["http_status"] == 200
        assert str(hook.webhook_token) not in received[-1]["message"]
    finally:
        for process in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
