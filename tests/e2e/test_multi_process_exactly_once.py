"""Three drain processes, 20 tenants × 500 gifts, one live sandbox: every gift exactly once, no 429."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from integrations.sandbox.models import SandboxCounters
from sync.models import Attempt, Origin, OutboundItem
from sync.services.enqueue import outbound_enqueue_many
from tenants.services import SYSTEM, tenant_create, tenant_update
from tests.e2e.conftest import point_tenant_at_sandbox
from tests.sync.conftest import gift_request

ROOT = Path(__file__).resolve().parents[2]
TENANTS = 20
ITEMS = 500
BATCH = 10  # 50 calls per tenant, so the budget, not batching, decides the pace

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs PostgreSQL: three OS processes share the queue"
    ),
]


def test_three_drain_processes_submit_every_item_exactly_once_within_budget(live_server, transactional_db):
    orgs = []
    for n in range(TENANTS):
        tenant = tenant_create(slug=f"scale-{n}", name=f"Scale {n}")
        # Compressed clock: the sandbox allows 30 calls per 10 s window; the tenant's budget is
        # 7,200/h less 10 % headroom = 1.8 calls/s with a 2 s burst, at most ~22 calls per window.
        orgs.append(point_tenant_at_sandbox(tenant, live_server.url, rate_limit=30, window_seconds=10))
        tenant_update(
            tenant=tenant,
            actor=SYSTEM,
            changes={"hourly_request_budget": 7200, "budget_headroom_percent": 10, "batch_size": BATCH},
        )
        outbound_enqueue_many(
            tenant=tenant, requests=[gift_request(f"{n}-{i}") for i in range(ITEMS)], origin=Origin.WEBHOOK
        )

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": _database_url(),
        "VIRTUOUS_BUCKET_BURST_SECONDS": "2",
        "RATE_LIMIT_BACKEND": "database",
    }
    command = [
        sys.executable,
        "manage.py",
        "outbound_drain",
        "--seconds",
        "120",
        "--threads",
        "8",
        "--until-empty",
    ]
    workers = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    outputs = [w.communicate(timeout=180) for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], [o[1][-2000:] for o in outputs]

    assert OutboundItem.objects.exclude(state="submitted").count() == 0
    assert OutboundItem.objects.count() == TENANTS * ITEMS
    counters = SandboxCounters.objects.filter(organization__in=orgs)
    assert {c.transactions_received for c in counters} == {ITEMS}
    assert sum(c.duplicate_submissions for c in counters) == 0
    assert sum(c.rate_limited_responses for c in counters) == 0
    assert Attempt.objects.filter(status_code=429).count() == 0
    assert Attempt.objects.count() == TENANTS * ITEMS // BATCH
    # the work really was shared between the processes
    assert sum(1 for out, _ in outputs if b"submitted=0 " not in out) >= 2


def _database_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER'] or 'postgres'}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
