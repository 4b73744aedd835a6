"""Fixtures for the Virtuous client: a frozen clock, bucket backends, and a client on a test host."""

from __future__ import annotations

import uuid

import pytest

from integrations.common.ratelimit import DatabaseBackend, RedisBackend, TenantBudget
from integrations.virtuous.client import CallRecord, VirtuousClient

BASE = "https://virtuous.test"
TOKEN = "vt_test_token_ABCD1234"
REDIS_TEST_URL = "redis://127.0.0.1:6379/5"


class FrozenClock:
    """A clock the test moves by hand, so refill arithmetic is exact."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def redis_backend():
    """A Redis backend on DB 5 with a prefix unique to this test; its keys are deleted after."""
    import redis

    try:
        redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(
            f"Redis is not reachable at {REDIS_TEST_URL} ({type(exc).__name__}); Redis backend untested"
        )
    backend = RedisBackend(url=REDIS_TEST_URL, prefix=f"gl-client-test:{uuid.uuid4().hex}:")
    yield backend
    for key in backend.client.scan_iter(match=backend.prefix + "*"):
        backend.client.delete(key)


# The mark, not only the ``db`` fixture: pytest-django sets the test database up only when a
# collected test is marked or asks for it by name, so run alone a database case found no table.
@pytest.fixture(params=[pytest.param("database", marks=pytest.mark.django_db), "redis"])
def backend(request):
    """Each bucket behaviour test runs on both backends."""
    if request.param == "database":
        return DatabaseBackend()
    return request.getfixturevalue("redis_backend")


@pytest.fixture
def calls() -> list[CallRecord]:
    return []


@pytest.fixture
def budget(db) -> TenantBudget:
    """A roomy budget on the database backend with the real clock (capacity 100)."""
    return TenantBudget(f"client-test-{uuid.uuid4()}", 6000, burst_seconds=60, backend=DatabaseBackend())


@pytest.fixture
def client(budget, calls) -> VirtuousClient:
    return VirtuousClient(
        base_url=BASE, token=TOKEN, budget=budget, tenant_label="alpha", on_call=calls.append
    )
