"""Fault scenarios end to end: drain processes against the live sandbox, killed, starved and flooded.

Every test here is bounded in time: subprocess waits carry timeouts and ``time_limit`` (autouse)
fails a test that runs past its budget instead of hanging CI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection

from integrations.sandbox.models import SandboxCounters, SandboxOrganization

ROOT = Path(__file__).resolve().parents[2]
TEST_SECONDS = 150

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL: separate OS processes share the queue"
)


@pytest.fixture(autouse=True)
def time_limit():
    """Fail (not hang) a fault test that runs longer than TEST_SECONDS."""

    def expired(signum, frame):
        raise TimeoutError(f"reliability test exceeded {TEST_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_SECONDS)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def database_url() -> str:
    s = connection.settings_dict
    user = s["USER"] or "postgres"
    auth = f"{user}:{s['PASSWORD']}" if s.get("PASSWORD") else user
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def manage_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": database_url(),
        "RATE_LIMIT_BACKEND": "database",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def manage_popen(*args: str, log: Path, **extra_env: str) -> subprocess.Popen:
    """Start ``manage.py <args>`` with stdout and stderr going to ``log`` (read it to see progress)."""
    handle = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=manage_env(**extra_env),
        stdout=handle,
        stderr=handle,
    )


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def kill9(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL


def counters(org: SandboxOrganization) -> SandboxCounters:
    return SandboxCounters.objects.get(organization=org)


def sandbox_knows_donors(org: SandboxOrganization, count: int) -> None:
    """Hold one contact per ``gift_request(n)`` donor, so the nightly batch can match every gift."""
    from integrations.sandbox.services import Submission, sandbox_transactions_submit

    donors = [
        Submission(
            "Stripe", f"cus_{n}", {"referenceSource": "Stripe", "referenceId": f"cus_{n}", "name": f"D {n}"}
        )
        for n in range(count)
    ]
    sandbox_transactions_submit(organization=org, kind="contact", submissions=donors)


def drain_until_settled(tenant, *, rounds: int = 60, **drain_kwargs) -> int:
    """Drain in-process until nothing of ``tenant`` is pending; between rounds the backoff is
    skipped (time passes). Returns the rounds used."""
    from django.utils import timezone

    from sync.models import OutboundItem
    from sync.outbound.drain import outbound_drain

    for n in range(1, rounds + 1):
        outbound_drain(tenant=tenant, max_budget_wait=0.0, **drain_kwargs)
        waiting = OutboundItem.objects.filter(tenant=tenant, state__in=["pending", "in_flight"])
        if not waiting.exists():
            return n
        waiting.filter(state="pending").update(next_attempt_at=timezone.now())
    raise AssertionError(f"{tenant.slug}: items still waiting after {rounds} drains")
