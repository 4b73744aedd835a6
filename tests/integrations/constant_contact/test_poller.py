import copy
from datetime import UTC, datetime, timedelta

import pytest
import responses

from integrations.constant_contact import poller
from integrations.constant_contact.client import ConstantContactError
from integrations.models import InboundEvent
from sync.inbound.drain import inbound_drain
from sync.inbound.polling import connection_poll
from sync.models import OutboundItem, SyncCheckpoint
from tests.integrations.conftest import fixture_json

from .conftest import CONTACTS_URL, LISTS_URL, FakeContacts, lists_body

START = datetime(2026, 3, 1, tzinfo=UTC)


def _contact(n, *, minutes=None, permission="implicit", opt_out_at=None, deleted=False):
    contact = copy.deepcopy(fixture_json("constant_contact", "contact.json"))
    when = (START + timedelta(minutes=n if minutes is None else minutes)).isoformat().replace("+00:00", "Z")
    contact["contact_id"] = f"00000000-0000-4000-8000-{n:012d}"
    contact["email_address"]["address"] = f"contact{n}@example.org"
    contact["email_address"]["permission_to_send"] = permission
    contact["updated_at"] = when
    if opt_out_at:
        contact["email_address"]["opt_out_date"] = opt_out_at
        contact["email_address"]["updated_at"] = opt_out_at
        contact["email_address"]["opt_out_reason"] = "No longer interested"
    if deleted:
        contact["deleted_at"] = "2026-03-05"
    return contact


def _run(connection, fake):
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, LISTS_URL, body=lists_body())
        mock.add_callback(responses.GET, CONTACTS_URL, callback=fake)
        return connection_poll(connection=connection)


def _checkpoint(connection, resource):
    cp = SyncCheckpoint.objects.get(scope=connection.credential_scope, resource_type=resource)
    return cp.last_processed_timestamp, cp.last_processed_id


def test_contact_maps_to_a_contact_transaction_with_list_tags(cc_connection):
    fake = FakeContacts([fixture_json("constant_contact", "contact.json")])
    assert _run(cc_connection, fake) == {"seen": 1, "new": 1}
    assert fake.calls[0]["status"] == "all" and "updated_after" not in fake.calls[0]
    assert fake.calls[1]["optout_after"] == "2000-01-01T00:00:00Z"
    assert fake.tokens_seen[0] == "Bearer at-1"
    inbound_drain(seconds=0)
    item = OutboundItem.objects.get()
    assert (item.external_source, item.external_id) == (
        "Constant Contact",
        "1618ae62-4752-11e9-9c8a-fa163e6b01c1",
    )
    assert item.payload == {
        "referenceSource": "Constant Contact",
        "referenceId": "1618ae62-4752-11e9-9c8a-fa163e6b01c1",
        "contactType": "Household",
        "firstName": "Mary",
        "lastName": "Seacole",
        "emailType": "Home Email",
        "email": "mary.seacole@example.org",
        "phoneType": "Home Phone",
        "phone": "+44 20 7946 0018",
        "address1": "14 Tavistock Square",
        "address2": "Flat 2",
        "city": "London",
        "postal": "WC1H 9HR",
        "country": "GB",
        "tags": "CC: Newsletter;CC: Volunteers",
    }
    assert _checkpoint(cc_connection, "cc-contacts")[0] == datetime(2026, 3, 3, 8, 15, 2, tzinfo=UTC)


def test_opt_out_found_by_both_passes_is_one_event_and_one_item(cc_connection):
    cc_connection.settings = {**cc_connection.settings, "opt_out_custom_field": "Email Opt-Out Reason"}
    cc_connection.save()
    fake = FakeContacts([_contact(1, permission="unsubscribed", opt_out_at="2026-03-04T10:00:00Z")])
    assert _run(cc_connection, fake) == {"seen": 2, "new": 1}
    inbound_drain(seconds=0)
    payload = OutboundItem.objects.get().payload
    assert payload["tags"] == "CC: Newsletter;CC: Volunteers;Constant Contact: Unsubscribed"
    assert payload["customFields"] == {
        "Email Opt-Out Reason": "Unsubscribed in Constant Contact (No longer interested)"
    }
    assert _checkpoint(cc_connection, "cc-optouts")[0] == datetime(2026, 3, 4, 10, tzinfo=UTC)


def test_an_opt_out_that_leaves_updated_at_alone_is_caught_by_the_second_pass(cc_connection):
    _run(cc_connection, FakeContacts([_contact(1)]))
    cc_connection.refresh_from_db()
    unsubscribed = _contact(1, permission="unsubscribed", opt_out_at="2026-03-09T12:00:00Z")
    fake = FakeContacts([unsubscribed])
    assert _run(cc_connection, fake)["new"] == 1
    assert fake.calls[0]["updated_after"] == "2026-03-01T00:00:00Z"  # checkpoint minus 60 s overlap
    inbound_drain(seconds=0)
    assert [i.payload["tags"].endswith("Unsubscribed") for i in OutboundItem.objects.order_by("id")] == [
        False,
        True,
    ]


def test_pending_and_deleted_contacts_write_nothing(cc_connection):
    _run(
        cc_connection,
        FakeContacts([_contact(1, permission="pending_confirmation"), _contact(2, deleted=True)]),
    )
    inbound_drain(seconds=0)
    assert not OutboundItem.objects.exists()
    reasons = sorted(InboundEvent.objects.values_list("status_reason", flat=True))
    assert "never deleted" in reasons[0] and "pending confirmation" in reasons[1]


def test_cursor_pages_are_followed_and_saved_every_100(cc_connection, monkeypatch):
    saves = []
    original = poller._record
    monkeypatch.setattr(poller, "SAVE_EVERY", 3)

    def spy(*args):
        saves.append(SyncCheckpoint.objects.filter(resource_type="cc-contacts").first())
        return original(*args)

    monkeypatch.setattr(poller, "_record", spy)
    fake = FakeContacts([_contact(n) for n in range(7)], page=2)
    assert _run(cc_connection, fake)["new"] == 7
    assert sum("cursor" in c for c in fake.calls) == 3
    assert saves[4].last_processed_id == _contact(2)["contact_id"]  # saved after the third


def test_descending_results_are_saved_only_at_the_end(cc_connection, monkeypatch):
    monkeypatch.setattr(poller, "SAVE_EVERY", 2)
    fake = FakeContacts([_contact(n) for n in range(5)], page=10)
    fake.select = lambda params: (
        [] if "optout_after" in params else sorted(fake.contacts, key=lambda c: c["updated_at"], reverse=True)
    )
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, LISTS_URL, body=lists_body())
        mock.add_callback(responses.GET, CONTACTS_URL, callback=fake)
        calls = []
        monkeypatch.setattr(
            "sync.inbound.polling.checkpoint_save",
            lambda **kw: calls.append((kw["resource"], kw["record_id"])),
        )
        connection_poll(connection=cc_connection)
    assert [c for c in calls if c[0] == "cc-contacts"] == [("cc-contacts", _contact(4)["contact_id"])]


def test_interrupted_poll_resumes_from_its_checkpoint_without_re_enqueuing(cc_connection, monkeypatch):
    monkeypatch.setattr(poller, "SAVE_EVERY", 4)
    contacts = [_contact(n) for n in range(10)]
    fake = FakeContacts(contacts, page=5)
    fake.fail_on_call = 2  # the second page of the contacts pass
    with pytest.raises(ConstantContactError):
        _run(cc_connection, fake)
    # Everything read before the failure is kept (the results came in ascending order).
    assert _checkpoint(cc_connection, "cc-contacts") == (
        START + timedelta(minutes=4),
        contacts[4]["contact_id"],
    )
    inbound_drain(seconds=0)
    assert OutboundItem.objects.count() == 5

    cc_connection.refresh_from_db()
    resumed = FakeContacts(contacts, page=5)
    counts = _run(cc_connection, resumed)
    assert resumed.calls[0]["updated_after"] == "2026-03-01T00:03:00Z"  # minus the 60 s overlap
    assert counts == {"seen": 6, "new": 5}  # contact 4 again, 5..9 new
    inbound_drain(seconds=0)
    assert OutboundItem.objects.count() == 10


def test_unmappable_contacts_go_to_review(cc_connection):
    bad = _contact(1)
    bad["first_name"] = "N" * 150
    no_email = _contact(2)
    no_email["email_address"] = {"updated_at": no_email["updated_at"]}
    _run(cc_connection, FakeContacts([bad, no_email]))
    inbound_drain(seconds=0)
    statuses = dict(InboundEvent.objects.values_list("status", "status_reason"))
    assert "firstName is 150 characters" in statuses["needs_review"]
    assert "no e-mail address" in statuses["processed"]
    assert not OutboundItem.objects.exists()


def test_a_contact_without_its_timestamp_fails_the_run(cc_connection):
    broken = _contact(1)
    broken["updated_at"] = "not a time"
    fake = FakeContacts([broken])
    fake.select = lambda params: [] if "optout_after" in params else fake.contacts
    with pytest.raises(ConstantContactError, match="updated_at"):
        _run(cc_connection, fake)


def test_polls_stay_in_their_tenant(cc_connection, other_tenant, make_connection):
    from .conftest import store_tokens

    other = make_connection(
        other_tenant, "constant_contact", capture_mode="polling", settings={"client_id": "x"}
    )
    store_tokens(other_tenant, other, access="at-bravo")
    fake = FakeContacts([_contact(1)])
    _run(cc_connection, fake)
    assert fake.tokens_seen[0] == "Bearer at-1"
    assert not InboundEvent.objects.filter(tenant=other_tenant).exists()
    assert not SyncCheckpoint.objects.filter(tenant=other_tenant).exists()
