"""Two worker processes sharing one tenant's database bucket never exceed its budget."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from integrations.common.ratelimit import DatabaseBackend, TenantBudget

ROOT = Path(__file__).resolve().parents[3]
PER_HOUR = 7200  # 2 tokens/s
BURST_SECONDS = 5  # capacity 10
HAMMER_SECONDS = 3.0

WORKER = """
import sys, time
import django
django.setup()
from integrations.common.ratelimit import DatabaseBackend, TenantBudget
key, per_hour, burst, start_at, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
budget = TenantBudget(key, per_hour, burst_seconds=burst, backend=DatabaseBackend())
while time.time() < start_at:
    time.sleep(0.005)
granted = 0
while time.time() < start_at + seconds:
    if budget.try_acquire() == 0.0:
        granted += 1
print(granted)
"""


def _database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL row locks shared by two processes; SQLite run"
)
def test_two_processes_never_exceed_the_shared_budget():
    # given: a fresh bucket, created (full) by this process
    key = f"pg-hammer-{uuid.uuid4()}"
    budget = TenantBudget(key, PER_HOUR, burst_seconds=BURST_SECONDS, backend=DatabaseBackend())
    created_at = time.time()
    assert budget.try_acquire() == 0.0
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", "DATABASE_URL": _database_url()}
    start_at = time.time() + 3.0  # both workers finish importing Django before they start
    args = [key, str(PER_HOUR), str(BURST_SECONDS), repr(start_at), str(HAMMER_SECONDS)]
    # when
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=60)[0] for w in workers]
    finished_at = time.time()
    # then
    assert [w.returncode for w in workers] == [0, 0]
    granted = [int(out.strip()) for out in outputs]
    total = 1 + sum(granted)
    allowed = budget.capacity + (finished_at - created_at) * PER_HOUR / 3600
    assert total <= allowed
    assert all(g > 0 for g in granted)  # both really competed for the same row
    assert total >= budget.capacity + HAMMER_SECONDS * PER_HOUR / 3600 * 0.5  # and the bucket was really used
