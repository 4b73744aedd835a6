"""Three drain processes, 20 tenants × 500 gifts, one live sandbox: every gift exactly once, no 429."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from integrations.sandbox.models import SandboxCounters
from sync.models import Attempt, Origin, OutboundItem
from sync.outbound.enqueue import outbound_enqueue_many
from tenants.services import SYSTEM, tenant_create, tenant_update
from tests.e2e.conftest import point_tenant_at_sandbox
from tests.sync.conftest import gift_request

ROOT = Path(__file__).resolve().parents[2]
TENANTS = 20
ITEMS = 500
BATCH = 25  # 20 calls per tenant: the budget (1.8 calls/s), not batching, decides the pace

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
        "400",
        "--threads",
        "8",
        "--until-empty",
    ]
    workers = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    # --until-empty ends the run as soon as the work is done; the ceiling only matters on a loaded machine.
    outputs = [w.communicate(timeout=480) for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], [o[1][-2000:] for o in outputs]

    left = OutboundItem.objects.exclude(state="submitted")
    assert left.count() == 0, _diagnose(left, outputs)
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


def _diagnose(left, outputs) -> str:
    """What the queue looked like when items were left: enough to tell a stall from slowness."""
    from django.db.models import Count, Max, Min

    from sync.models import TenantQueue

    per_tenant = list(
        left.values("tenant__slug", "state").annotate(
            n=Count("id"), due=Min("next_attempt_at"), last=Max("last_error")
        )
    )
    queues = list(
        TenantQueue.objects.filter(tenant__slug__in=[r["tenant__slug"] for r in per_tenant]).values()
    )
    return f"left={per_tenant} queues={queues} out={[o[0][-300:] for o in outputs]} err={[o[1][-800:] for o in outputs]}"
