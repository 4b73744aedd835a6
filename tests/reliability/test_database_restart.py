"""PostgreSQL stopped and started in the middle of a drain: the work resumes and nothing is lost.

The platform's queue lives in a private cluster started for this test (never the shared server);
the Virtuous sandbox lives in the test database behind live_server, so its counters survive the
restart and tell what Virtuous really received.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest

from integrations.sandbox.models import SandboxGift, SandboxTransaction
from integrations.sandbox.services import sandbox_batch_run, sandbox_faults_set, sandbox_org_create
from tests.reliability.conftest import (
    ROOT,
    counters,
    manage_env,
    needs_postgres,
    sandbox_knows_donors,
    wait_for,
)
from tests.reliability.services import PrivatePostgres, postgres_bin

ITEMS = 100
BATCH = 5

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    needs_postgres,
    pytest.mark.skipif(
        postgres_bin() is None, reason="PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    ),
    pytest.mark.skipif(
        shutil.which("runuser") is None,
        reason="runuser is needed to run a private cluster as the postgres user",
    ),
]

SEED = """
import os
from sync.models import Origin
from sync.outbound.enqueue import outbound_enqueue_many
from tenants.services import SYSTEM, tenant_create, tenant_update, tenant_virtuous_url_change
from tests.sync.conftest import gift_request
t = tenant_create(slug="restart", name="Restart Shelter")
tenant_virtuous_url_change(tenant=t, base_url=os.environ["SEED_BASE_URL"], api_token=os.environ["SEED_TOKEN"], actor=SYSTEM)
tenant_update(tenant=t, actor=SYSTEM, changes={"batch_size": 5})
outbound_enqueue_many(tenant=t, requests=[gift_request(n) for n in range(int(os.environ["SEED_ITEMS"]))], origin=Origin.WEBHOOK)
"""
STATES = """
import json
from collections import Counter
from sync.models import OutboundItem
print(json.dumps(Counter(OutboundItem.objects.values_list("state", flat=True))))
"""


@pytest.fixture
def private_postgres():
    cluster = PrivatePostgres()
    try:
        cluster.init()
        yield cluster
    finally:
        cluster.destroy()


def _manage(cluster: PrivatePostgres, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=manage_env(DATABASE_URL=cluster.url, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _states(cluster: PrivatePostgres) -> dict[str, int]:
    done = _manage(cluster, "shell", "-c", STATES)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_postgres_restart_mid_drain_loses_nothing(private_postgres, live_server, transactional_db, tmp_path):
    org, token = sandbox_org_create(name="Restart Shelter (Sandbox)")
    sandbox_knows_donors(org, ITEMS)
    sandbox_faults_set(organization=org, added_latency_ms=300)  # ~6 s of calls: time to pull the plug
    assert _manage(private_postgres, "migrate", "--noinput").returncode == 0
    seeded = _manage(
        private_postgres,
        "shell",
        "-c",
        SEED,
        SEED_BASE_URL=f"{live_server.url}/sandbox/virtuous",
        SEED_TOKEN=token,
        SEED_ITEMS=str(ITEMS),
    )
    assert seeded.returncode == 0, seeded.stderr[-2000:]

    # given: a drain under way
    log = (tmp_path / "drain.log").open("wb")
    drain = subprocess.Popen(
        [sys.executable, "manage.py", "outbound_drain", "--seconds", "90", "--threads", "2", "--until-empty"],
        cwd=ROOT,
        env=manage_env(
            DATABASE_URL=private_postgres.url, OUTBOUND_LEASE_SECONDS="3", OUTBOUND_DRAIN_SLICE_SECONDS="3"
        ),
        stdout=log,
        stderr=log,
    )
    wait_for(
        lambda: counters(org).transactions_received >= 5 * BATCH, timeout=30, what="the drain to get going"
    )

    # when: PostgreSQL goes away for three seconds, then comes back
    private_postgres.stop()
    stopped_at = counters(org).transactions_received
    time.sleep(3)
    private_postgres.start()

    # then: the same worker carries on and finishes
    assert drain.wait(timeout=100) == 0, (tmp_path / "drain.log").read_text()[-3000:]
    assert stopped_at < ITEMS  # the outage really was mid-drain
    assert _states(private_postgres) == {"submitted": ITEMS}
    c = counters(org)
    assert SandboxTransaction.objects.filter(organization=org, kind="gift").count() == ITEMS
    assert c.transactions_received - c.duplicate_submissions == ITEMS
    assert c.duplicate_submissions <= 2 * BATCH  # at most the batches caught by the outage, resent
    sandbox_batch_run(organization=org)
    assert SandboxGift.objects.filter(organization=org).count() == ITEMS
