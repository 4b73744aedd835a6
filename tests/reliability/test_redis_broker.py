"""Redis, as the task broker, going away under a running cluster: the work resumes, nothing is lost.

Retry state lives in our tables, not in the broker: a drain task already running finishes its
slice, an enqueue while Redis is down fails loudly (the scheduler retries next minute), and once
Redis is back (empty: it had no persistence) the cluster serves new tasks and the queue drains.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest
from django_q.models import Task

from integrations.sandbox.models import SandboxGift, SandboxTransaction
from integrations.sandbox.services import sandbox_batch_run, sandbox_faults_set
from sync.models import Origin, OutboundItem
from sync.outbound.enqueue import outbound_enqueue_many
from tenants.services import SYSTEM, tenant_create, tenant_update
from tests.e2e.conftest import point_tenant_at_sandbox
from tests.reliability.conftest import (
    ROOT,
    counters,
    manage_env,
    manage_popen,
    needs_postgres,
    sandbox_knows_donors,
    wait_for,
)
from tests.reliability.services import PrivateRedis
from tests.sync.conftest import gift_request

ITEMS = 60
BATCH = 5
ENQUEUE = "from django_q.tasks import async_task; async_task('sync.tasks.outbound_dispatch')"

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    needs_postgres,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
]


@pytest.fixture
def private_redis():
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


def _broker_env(redis: PrivateRedis) -> dict[str, str]:
    # config.settings, not the test settings: those run tasks inline (sync=True) instead of via Redis.
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "REDIS_URL": redis.url,
        "Q_WORKERS": "1",
        "OUTBOUND_DISPATCH_SECONDS": "4",
        "OUTBOUND_DRAIN_SLICE_SECONDS": "3",
        "OUTBOUND_LEASE_SECONDS": "3",
        "OUTBOUND_TENANT_IN_FLIGHT": "1",  # one call at a time: one 4 s task cannot finish the queue
    }


def _enqueue(redis: PrivateRedis) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", ENQUEUE],
        cwd=ROOT,
        env=manage_env(**_broker_env(redis)),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_redis_going_away_under_the_cluster_loses_no_work(
    private_redis, live_server, transactional_db, tmp_path
):
    tenant = tenant_create(slug="broker", name="Broker Shelter")
    org = point_tenant_at_sandbox(tenant, live_server.url)
    tenant_update(tenant=tenant, actor=SYSTEM, changes={"batch_size": BATCH})
    sandbox_knows_donors(org, ITEMS)
    sandbox_faults_set(organization=org, added_latency_ms=500)  # 12 calls ≈ 6 s: more than one 4 s task
    outbound_enqueue_many(
        tenant=tenant, requests=[gift_request(n) for n in range(ITEMS)], origin=Origin.WEBHOOK
    )
    cluster = manage_popen("qcluster", log=tmp_path / "qcluster.log", **_broker_env(private_redis))
    try:
        # given: a dispatch task running in the cluster
        assert _enqueue(private_redis).returncode == 0
        wait_for(lambda: counters(org).transactions_received >= BATCH, timeout=40, what="the task to start")

        # when: Redis dies under it
        private_redis.stop()
        down = _enqueue(private_redis)
        assert down.returncode != 0 and "Connection" in down.stderr  # refused loudly, not lost quietly
        wait_for(
            lambda: Task.objects.filter(func="sync.tasks.outbound_dispatch").exists(),
            timeout=30,
            what="the running task to finish and record its result",
        )
        left = OutboundItem.objects.exclude(state="submitted").count()
        assert 0 < left < ITEMS  # the task did its slice; the rest waits in our tables
        time.sleep(2)
        private_redis.start()

        # then: the cluster serves new tasks and the rest drains
        assert _enqueue(private_redis).returncode == 0
        wait_for(
            lambda: not OutboundItem.objects.exclude(state="submitted").exists(),
            timeout=60,
            what="the rest to drain",
        )
    finally:
        cluster.terminate()
        try:
            cluster.wait(timeout=20)
        except subprocess.TimeoutExpired:
            cluster.kill()
            cluster.wait(timeout=10)
    c = counters(org)
    assert SandboxTransaction.objects.filter(organization=org, kind="gift").count() == ITEMS
    assert c.transactions_received - c.duplicate_submissions == ITEMS
    sandbox_batch_run(organization=org)
    assert SandboxGift.objects.filter(organization=org).count() == ITEMS
