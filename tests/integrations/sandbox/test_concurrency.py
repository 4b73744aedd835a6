"""Counters, rate windows and resubmissions stay exact when many connections hit them at once."""

from __future__ import annotations

import threading

import pytest
from django.conf import settings
from django.db import connection

from integrations.sandbox import limits, services
from integrations.sandbox.models import SandboxRateWindow, SandboxTransaction
from tests.integrations.sandbox.conftest import counters, gift_item

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"),
        reason="needs PostgreSQL: SQLite serialises writers, so it cannot show lost updates",
    ),
    pytest.mark.django_db(transaction=True),
]

THREADS = 8
EACH = 25


def _in_threads(work) -> list:
    barrier = threading.Barrier(THREADS)
    results: list = []
    lock = threading.Lock()

    def run(n: int) -> None:
        try:
            barrier.wait()
            value = work(n)
            with lock:
                results.append(value)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == THREADS
    return results


def test_counters_never_lose_an_increment():
    org, _ = services.sandbox_org_create(name="Concurrent")
    _in_threads(
        lambda n: [limits.counters_add(organization_id=org.pk, requests_total=1) for _ in range(EACH)]
    )
    assert counters(org)["requests_total"] == THREADS * EACH


def test_rate_window_hands_out_each_count_once():
    org, _ = services.sandbox_org_create(name="Concurrent")
    now = 1_800_000_000.0
    used = _in_threads(lambda n: [limits.rate_hit(organization=org, now=now).used for _ in range(EACH)])
    flat = sorted(u for batch in used for u in batch)
    assert flat == list(range(1, THREADS * EACH + 1))
    assert SandboxRateWindow.objects.get(organization=org).hits == THREADS * EACH


def test_simultaneous_resubmissions_make_one_row():
    org, _ = services.sandbox_org_create(name="Concurrent")
    sub = services.gift_transaction_validate(gift_item("ch_race"))
    results = _in_threads(
        lambda n: services.sandbox_transactions_submit(organization=org, kind="gift", submissions=[sub])
    )
    assert sum(dup for _, dup in results) == THREADS - 1
    row = SandboxTransaction.objects.get(organization=org)
    assert row.submit_count == THREADS
