import copy
import hashlib
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import responses
from django.urls import reverse

from integrations.mailchimp import poller
from integrations.mailchimp.client import MailchimpError, api_base_url
from integrations.models import InboundEvent
from sync.inbound.drain import inbound_drain
from sync.inbound.polling import connection_poll
from sync.models import OutboundItem, SyncCheckpoint
from tenants.services import credential_set
from tests.integrations.conftest import fixture_json

API_KEY = "0123456789abcdef0123456789abcdef-us19"
LIST = "a6b5da1054"
MEMBERS_URL = f"https://us19.api.mailchimp.com/3.0/lists/{LIST}/members"
START = datetime(2026, 3, 1, tzinfo=UTC)


class FakeAudience:
    """Mailchimp's members endpoint over an in-memory list: since (inclusive), sort, offset, count."""

    def __init__(self, members):
        self.members = members
        self.fail_on_call = None
        self.calls = []

    def __call__(self, request):
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        self.calls.append(query)
        if self.fail_on_call == len(self.calls):
            return 500, {}, "{}"
        assert request.headers["Authorization"].startswith("Basic ")
        since = query.get("since_last_changed")
        rows = sorted(self.members, key=lambda m: m["last_changed"])
        if since:
            rows = [
                m for m in rows if datetime.fromisoformat(m["last_changed"]) >= datetime.fromisoformat(since)
            ]
        offset, count = int(query["offset"]), int(query["count"])
        return 200, {}, json.dumps({"members": rows[offset : offset + count], "total_items": len(rows)})


def _member(n, *, minutes=None, status="subscribed", tags=()):
    email = f"member{n}@example.org"
    when = START + timedelta(minutes=n if minutes is None else minutes)
    return {
        "id": hashlib.md5(email.encode()).hexdigest(),
        "email_address": email,
        "status": status,
        "merge_fields": {"FNAME": f"First{n}", "LNAME": "Member", "ADDRESS": "", "PHONE": ""},
        "tags": [{"id": i, "name": t} for i, t in enumerate(tags)],
        "last_changed": when.isoformat(),
        "list_id": LIST,
    }


@pytest.fixture
def connection(tenant, make_connection):
    c = make_connection(
        tenant,
        "mailchimp",
        secret="mc-path-secret-9f3b1c7e5d2a4b6c8e0f",
        capture_mode="hybrid",
        settings={"audiences": {LIST: "Supporters"}},
    )
    credential_set(
        tenant=tenant, platform="mailchimp", purpose="api_token", secret=API_KEY, scope=c.credential_scope
    )
    return c


def _run(connection, audience):
    with responses.RequestsMock() as mock:
        mock.add_callback(responses.GET, MEMBERS_URL, callback=audience)
        return connection_poll(connection=connection)


def _checkpoint(connection):
    cp = SyncCheckpoint.objects.get(scope=connection.credential_scope, resource_type=f"mc-members:{LIST}")
    return cp.last_processed_timestamp, cp.last_processed_id


def test_api_key_suffix_selects_the_data_centre():
    assert api_base_url(API_KEY) == "https://us19.api.mailchimp.com/3.0"
    with pytest.raises(MailchimpError, match="data-centre"):
        api_base_url("nodatacentre")
    with pytest.raises(MailchimpError, match="data-centre"):
        api_base_url("abc-us1.evil.example")


def test_pages_by_timestamp_and_checkpoints_the_newest_change(connection, monkeypatch):
    monkeypatch.setattr(poller, "PAGE_SIZE", 40)
    audience = FakeAudience([_member(n) for n in range(100)])
    # Each page's last member is read again at the start of the next page, and dedupes.
    assert _run(connection, audience) == {"seen": 102, "new": 100}
    assert "since_last_changed" not in audience.calls[0]
    assert [c["offset"] for c in audience.calls] == ["0", "0", "0"]
    assert audience.calls[1]["since_last_changed"] == (START + timedelta(minutes=39, seconds=-1)).isoformat()
    assert _checkpoint(connection) == (START + timedelta(minutes=99), _member(99)["id"])
    inbound_drain(seconds=0)
    assert OutboundItem.objects.filter(operation="contact_transaction").count() == 100


def test_a_page_sharing_one_second_moves_on_by_offset(connection, monkeypatch):
    monkeypatch.setattr(poller, "PAGE_SIZE", 10)
    audience = FakeAudience([_member(n, minutes=5) for n in range(25)])
    assert _run(connection, audience)["new"] == 25
    assert [c["offset"] for c in audience.calls][-2:] == ["10", "20"]


def test_interrupted_poll_resumes_from_its_checkpoint_without_re_enqueuing(connection, monkeypatch):
    monkeypatch.setattr(poller, "PAGE_SIZE", 120)
    audience = FakeAudience([_member(n) for n in range(200)])
    audience.fail_on_call = 2
    with pytest.raises(MailchimpError):
        _run(connection, audience)
    assert _checkpoint(connection) == (START + timedelta(minutes=99), _member(99)["id"])  # saved at 100
    assert InboundEvent.objects.count() == 120
    inbound_drain(seconds=0)
    assert OutboundItem.objects.count() == 120

    connection.refresh_from_db()
    resumed = FakeAudience(audience.members)
    counts = _run(connection, resumed)
    assert resumed.calls[0]["since_last_changed"] == (START + timedelta(minutes=98)).isoformat()
    assert counts == {"seen": 102, "new": 80}  # 98..199 read again, only 120..199 are new
    inbound_drain(seconds=0)
    assert OutboundItem.objects.count() == 200
    assert _checkpoint(connection)[0] == START + timedelta(minutes=199)


def test_webhook_and_poll_of_the_same_member_are_one_queue_item(client, connection):
    subscribe = fixture_json("mailchimp", "subscribe.json")
    url = reverse(
        "integrations:receive-with-secret",
        args=[connection.webhook_token, "mc-path-secret-9f3b1c7e5d2a4b6c8e0f"],
    )
    client.post(url, data=urlencode(subscribe), content_type="application/x-www-form-urlencoded")
    _run(connection, FakeAudience([fixture_json("mailchimp", "member.json")]))
    assert InboundEvent.objects.count() == 2
    assert inbound_drain(seconds=0) == {"processed": 2}
    [item] = OutboundItem.objects.all()
    assert item.external_id == fixture_json("mailchimp", "member.json")["id"]


def test_member_tags_are_a_second_write_and_a_repeat_poll_adds_nothing(connection):
    member = _member(1, tags=["VIP", "Gala 2026"])
    _run(connection, FakeAudience([member]))
    inbound_drain(seconds=0)
    connection.refresh_from_db()
    _run(connection, FakeAudience([copy.deepcopy(member)]))
    inbound_drain(seconds=0)
    tags = sorted(i.payload["tags"] for i in OutboundItem.objects.all())
    assert tags == ["Mailchimp: Supporters", "Mailchimp: Supporters;MC: VIP;MC: Gala 2026"]


def test_pending_members_are_held_until_a_poll_shows_them_subscribed(connection):
    pending = _member(1, status="pending")
    _run(connection, FakeAudience([pending]))
    inbound_drain(seconds=0)
    assert not OutboundItem.objects.exists()
    assert "pending double opt-in" in InboundEvent.objects.get().status_reason
    connection.refresh_from_db()
    _run(connection, FakeAudience([_member(1, minutes=30)]))
    inbound_drain(seconds=0)
    assert OutboundItem.objects.get().external_id == pending["id"]


def test_polled_unsubscribe_is_the_opt_out_mapping(connection):
    _run(connection, FakeAudience([_member(1, status="unsubscribed")]))
    inbound_drain(seconds=0)
    assert OutboundItem.objects.get().payload["tags"] == "Mailchimp: Supporters;Mailchimp: Unsubscribed"


def test_polling_is_per_connection_and_needs_its_settings(connection, other_tenant, make_connection):
    other = make_connection(other_tenant, "mailchimp", capture_mode="polling", settings={})
    with pytest.raises(ValueError, match="audiences"):
        connection_poll(connection=other)
    _run(connection, FakeAudience([_member(1)]))
    assert not InboundEvent.objects.filter(tenant=other_tenant).exists()
    assert not SyncCheckpoint.objects.filter(tenant=other_tenant).exists()
    other.refresh_from_db()
    assert other.consecutive_failures == 1 and "audiences" in other.last_error
