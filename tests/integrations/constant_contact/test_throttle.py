import json
from datetime import UTC, datetime

import pytest
import responses

from integrations.common.ratelimit import DatabaseBackend
from integrations.constant_contact import throttle as throttle_module
from integrations.constant_contact.client import ConstantContactClient
from integrations.constant_contact.throttle import DAY_KEY, SECOND_KEY, ApplicationThrottle, Throttled
from integrations.models import InboundEvent, RateBucket
from sync.inbound.polling import connection_poll
from sync.models import SyncCheckpoint

from .conftest import CONTACTS_URL, LISTS_URL, FakeContacts, lists_body, store_tokens


class FakeTime:
    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


@pytest.fixture
def bravo_connection(other_tenant, make_connection):
    c = make_connection(
        other_tenant, "constant_contact", capture_mode="polling", settings={"client_id": "cid-b"}
    )
    store_tokens(other_tenant, c, access="at-bravo")
    return c


def test_two_tenants_share_one_application_budget(cc_connection, bravo_connection, settings):
    settings.CONSTANT_CONTACT_REQUESTS_PER_SECOND = 1
    fake = FakeTime(1_800_000_000.0)
    shared = dict(backend=DatabaseBackend(), clock=fake.clock, sleep=fake.sleep)
    alpha = ConstantContactClient(cc_connection, throttle=ApplicationThrottle(**shared))
    bravo = ConstantContactClient(bravo_connection, throttle=ApplicationThrottle(**shared))
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, LISTS_URL, body=lists_body())
        alpha.get("/v3/contact_lists")
        bravo.get("/v3/contact_lists")  # the second call of the second: bravo waits for alpha's
        alpha.get("/v3/contact_lists")
        tokens = [c.request.headers["Authorization"] for c in mock.calls]
    assert fake.slept == [1.0, 1.0]
    assert tokens == ["Bearer at-1", "Bearer at-bravo", "Bearer at-1"]
    assert set(RateBucket.objects.values_list("key", flat=True)) == {SECOND_KEY, DAY_KEY}


def test_a_spent_daily_budget_stops_every_tenant(cc_connection, bravo_connection, settings):
    settings.CONSTANT_CONTACT_REQUESTS_PER_DAY = 48  # two an hour, bucket of two
    fake = FakeTime(1_800_000_000.0)
    shared = dict(backend=DatabaseBackend(), clock=fake.clock, sleep=fake.sleep)
    alpha = ConstantContactClient(cc_connection, throttle=ApplicationThrottle(**shared))
    bravo = ConstantContactClient(bravo_connection, throttle=ApplicationThrottle(**shared))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.GET, LISTS_URL, body=lists_body())
        alpha.get("/v3/contact_lists")
        alpha.get("/v3/contact_lists")
        with pytest.raises(Throttled, match=DAY_KEY) as caught:
            bravo.get("/v3/contact_lists")
        assert len(mock.calls) == 2
    assert caught.value.retry_in == pytest.approx(1800, abs=1)


def test_quota_exceeded_pauses_the_application_until_utc_midnight(cc_connection, monkeypatch):
    fake = FakeTime(datetime(2026, 3, 2, 21, 30, tzinfo=UTC).timestamp())
    app = ApplicationThrottle(backend=DatabaseBackend(), clock=fake.clock, sleep=fake.sleep)
    client = ConstantContactClient(cc_connection, throttle=app)
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, LISTS_URL, status=429, body=json.dumps([{"error_key": "quota_exceeded"}]))
        with pytest.raises(Throttled, match="quota_exceeded"):
            client.get("/v3/contact_lists")
    with pytest.raises(Throttled) as caught:
        app.acquire()
    assert caught.value.retry_in == pytest.approx(2.5 * 3600)
    assert sum(fake.slept) < 0.01  # refused at once, not after a 2.5 h sleep


def test_per_second_429_pauses_only_briefly(cc_connection):
    fake = FakeTime(1_800_000_000.0)
    app = ApplicationThrottle(backend=DatabaseBackend(), clock=fake.clock, sleep=fake.sleep)
    app.rejected("throttled")
    app.acquire()
    assert fake.slept == [1.0]


def test_a_throttled_poll_stops_cleanly_and_keeps_its_progress(cc_connection, monkeypatch):
    calls = {"n": 0}
    real_acquire = ApplicationThrottle.acquire

    def acquire(self):
        calls["n"] += 1
        if calls["n"] > 2:  # the list call and the first contacts page only
            raise Throttled("Constant Contact application budget exhausted", retry_in=600)
        real_acquire(self)

    monkeypatch.setattr(throttle_module.ApplicationThrottle, "acquire", acquire)
    from .test_poller import _contact

    fake = FakeContacts([_contact(n) for n in range(4)], page=2)
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, LISTS_URL, body=lists_body())
        mock.add_callback(responses.GET, CONTACTS_URL, callback=fake)
        assert connection_poll(connection=cc_connection) == {"seen": 2, "new": 2}
    cc_connection.refresh_from_db()
    assert cc_connection.consecutive_failures == 0
    assert InboundEvent.objects.count() == 2
    checkpoint = SyncCheckpoint.objects.get(resource_type="cc-contacts")
    assert checkpoint.last_processed_id == _contact(1)["contact_id"]  # the next run goes on from here
