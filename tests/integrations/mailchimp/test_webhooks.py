import uuid
from urllib.parse import urlencode

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.mailchimp import webhooks
from integrations.mailchimp.mapping import HANDLERS, subscriber_hash
from integrations.models import InboundEvent
from integrations.types import MalformedPayload, WebhookRequest
from sync.inbound.drain import inbound_drain
from sync.models import OutboundItem
from tests.integrations.conftest import FIXTURES, fixture_json

SECRET = "mc-path-secret-9f3b1c7e5d2a4b6c8e0f"
OLD_SECRET = "mc-path-secret-previous-4411aa"
FORM = "application/x-www-form-urlencoded"
ADA = subscriber_hash("ada.lovelace@example.org")


@pytest.fixture
def case(webhook_case):
    return webhook_case(
        "mailchimp", SECRET, content_type=FORM, settings={"audiences": {"a6b5da1054": "Supporters"}}
    )


@pytest.fixture
def connection(case):
    return case.connection


def _url(connection, secret=SECRET):
    if secret is None:
        return reverse("integrations:receive", args=[connection.webhook_token])
    return reverse("integrations:receive-with-secret", args=[connection.webhook_token, secret])


def _post(client, connection, fields, *, secret=SECRET, content_type=FORM):
    body = fields if isinstance(fields, bytes) else urlencode(fields).encode()
    return client.post(_url(connection, secret), data=body, content_type=content_type)


def _fixture(name):
    return fixture_json("mailchimp", f"{name}.json")


def _contacts():
    return list(OutboundItem.objects.filter(operation="contact_transaction").order_by("id"))


def test_subscribe_is_stored_raw_with_a_derived_key_and_nothing_else_happens(client, connection):
    fields = _fixture("subscribe")
    response = _post(client, connection, fields)
    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert bytes(event.body) == urlencode(fields).encode()
    assert (event.status, event.event_type, event.signature_valid) == ("pending", "subscribe", True)
    assert event.dedupe_key.startswith("mc:") and len(event.dedupe_key) == 67
    assert event.occurred_at.isoformat() == "2026-03-02T14:05:11+00:00"
    assert not OutboundItem.objects.exists()


def test_subscribe_maps_merge_fields_audience_tag_and_the_subscriber_hash(client, connection):
    _post(client, connection, _fixture("subscribe"))
    assert inbound_drain(seconds=0) == {"processed": 1}
    [item] = _contacts()
    assert (item.external_source, item.external_id) == ("Mailchimp", ADA)
    assert item.idempotency_key.startswith(f"contact_transaction:Mailchimp:{ADA}:")
    assert item.payload == {
        "referenceSource": "Mailchimp",
        "referenceId": ADA,
        "contactType": "Household",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "emailType": "Home Email",
        "email": "ada.lovelace@example.org",
        "phoneType": "Home Phone",
        "phone": "+1 312 555 0147",
        "address1": "12 Analytical Way",
        "city": "Chicago",
        "state": "IL",
        "postal": "60601",
        "country": "US",
        "tags": "Mailchimp: Supporters",
    }


def test_profile_change_is_a_new_item_on_the_same_reference_and_a_repeat_is_not(client, connection):
    _post(client, connection, _fixture("subscribe"))
    _post(client, connection, _fixture("profile"))
    later = dict(_fixture("profile"), fired_at="2026-03-05 10:00:00")  # same state, new delivery
    _post(client, connection, later)
    inbound_drain(seconds=0)
    items = _contacts()
    assert [i.payload["lastName"] for i in items] == ["Lovelace", "King"]
    assert {i.external_id for i in items} == {ADA}


def test_unknown_audience_gets_no_tag(client, connection):
    _post(client, connection, dict(_fixture("subscribe"), **{"data[list_id]": "ffffffffff"}))
    inbound_drain(seconds=0)
    assert "tags" not in _contacts()[0].payload


@pytest.mark.parametrize(
    "name,email,tag",
    [
        ("unsubscribe", "ada.lovelace@example.org", "Unsubscribed"),
        ("cleaned", "grace.hopper@example.org", "Cleaned"),
    ],
)
def test_opt_outs_tag_the_contact_and_fill_the_configured_field(client, connection, name, email, tag):
    connection.settings = {**connection.settings, "opt_out_custom_field": "Email Opt-Out Reason"}
    connection.save()
    _post(client, connection, _fixture(name))
    inbound_drain(seconds=0)
    [item] = _contacts()
    assert item.external_id == subscriber_hash(email) and item.payload["email"] == email
    assert item.payload["tags"] == f"Mailchimp: Supporters;Mailchimp: {tag}"
    reason = "manual" if name == "unsubscribe" else "hard"
    assert item.payload["customFields"] == {"Email Opt-Out Reason": f"{tag} in Mailchimp ({reason})"}


def test_opt_out_without_a_configured_field_is_only_a_tag(client, connection):
    _post(client, connection, _fixture("unsubscribe"))
    inbound_drain(seconds=0)
    assert "customFields" not in _contacts()[0].payload


def test_upemail_puts_the_new_address_on_the_old_reference(client, connection):
    _post(client, connection, _fixture("upemail"))
    inbound_drain(seconds=0)
    [item] = _contacts()
    assert item.external_id == ADA
    assert item.payload["email"] == "ada@analytical.example.org"
    event = InboundEvent.objects.get()
    assert event.status == "processed" and "E-mail changed" in event.status_reason


def test_pending_member_is_held_with_a_note(client, connection):
    _post(client, connection, dict(_fixture("subscribe"), **{"data[status]": "pending"}))
    inbound_drain(seconds=0)
    event = InboundEvent.objects.get()
    assert event.status == "processed" and "pending double opt-in" in event.status_reason
    assert not OutboundItem.objects.exists()


def test_campaign_and_empty_validation_post_are_acknowledged_and_ignored(client, connection):
    campaign = {
        "type": "campaign",
        "fired_at": "2026-03-02 14:05:11",
        "data[id]": "5aa2102003",
        "data[subject]": "Spring appeal",
        "data[status]": "sent",
        "data[list_id]": "a6b5da1054",
    }
    assert _post(client, connection, campaign).status_code == 200
    assert _post(client, connection, b"").status_code == 200
    assert list(InboundEvent.objects.values_list("status", flat=True)) == ["ignored", "ignored"]
    inbound_drain(seconds=0)
    assert not OutboundItem.objects.exists()


def test_same_delivery_twice_is_one_event_and_one_item(client, connection):
    assert _post(client, connection, _fixture("subscribe")).status_code == 200
    assert _post(client, connection, _fixture("subscribe")).status_code == 200
    assert list(InboundEvent.objects.order_by("id").values_list("status", flat=True)) == [
        "pending",
        "duplicate",
    ]
    inbound_drain(seconds=0)
    assert len(_contacts()) == 1


def test_handshake_get_answers_200_only_for_the_right_secret(client, case, connection):
    assert client.get(_url(connection)).status_code == 200
    assert client.get(_url(connection, "wrong-secret")).status_code == 403
    assert client.get(_url(connection, None)).status_code == 404
    case.add_pending_secret(OLD_SECRET)
    assert client.get(_url(connection, OLD_SECRET)).status_code == 200
    assert not InboundEvent.objects.exists()  # a handshake stores nothing


def test_pending_and_active_path_secrets_both_verify(client, case, connection):
    case.add_pending_secret(OLD_SECRET)
    assert _post(client, connection, _fixture("subscribe"), secret=OLD_SECRET).status_code == 200
    assert _post(client, connection, _fixture("profile"), secret=SECRET).status_code == 200
    assert InboundEvent.objects.filter(status="pending").count() == 2


@pytest.mark.parametrize(
    "secret,reason",
    [("not-the-secret", "does not match"), (None, "missing secret"), (SECRET + "x", "does not match")],
)
def test_wrong_or_missing_path_secret_is_refused_and_recorded(client, case, connection, secret, reason):
    case.assert_refused(_post(client, connection, _fixture("subscribe"), secret=secret), reason)


def test_a_tenants_secret_on_another_tenants_url_is_refused(client, case, connection):
    other = case.outsider("bravo-mailchimp-secret-77")
    response = _post(client, other, _fixture("subscribe"), secret=SECRET)
    assert client.get(_url(other, SECRET)).status_code == 403
    case.assert_outsider_refuses_our_signature(response)
    assert (
        _post(client, connection, _fixture("subscribe"), secret="bravo-mailchimp-secret-77").status_code
        == 400
    )


def test_a_body_without_a_content_type_is_malformed(client, connection):
    assert _post(client, connection, _fixture("subscribe"), content_type="").status_code == 400
    assert InboundEvent.objects.get().status_reason.startswith("A body without a content type")


def test_unknown_url_and_json_content_type_are_refused(client, connection):
    url = reverse("integrations:receive-with-secret", args=[uuid.uuid4(), SECRET])
    assert client.post(url, data=urlencode(_fixture("subscribe")), content_type=FORM).status_code == 404
    assert (
        _post(client, connection, b'{"type": "subscribe"}', content_type="application/json").status_code
        == 415
    )


def test_processing_stays_inside_the_tenant(client, connection, other_tenant, make_connection):
    other = make_connection(other_tenant, "mailchimp", secret="bravo-mailchimp-secret-77")
    _post(client, connection, _fixture("subscribe"))
    _post(client, other, _fixture("subscribe"), secret="bravo-mailchimp-secret-77")
    inbound_drain(seconds=0)
    items = OutboundItem.objects.filter(operation="contact_transaction")
    assert sorted(i.tenant.slug for i in items) == ["alpha", "bravo"]
    # The audience tag comes from each connection's own settings.
    assert {i.tenant.slug: "tags" in i.payload for i in items} == {"alpha": True, "bravo": False}


@pytest.mark.parametrize(
    "body,message",
    [
        (b"type=subscribe&fired_at=2026-03-02+14%3A05%3A11", "no data"),
        (b"fired_at=2026&data[email]=a%40b.org", "no 'type'"),
        (b"type=subscribe&data[email]=a&data[email][x]=b", "both as a value and a group"),
        (b"type=subscribe&data[email]=a&data[email]=b", "given twice"),
        (b"type=subscribe&data[merges[x]=a", "Unexpected form key"),
        (b"type=subscribe&data[email]=%FF%FE", "not a valid form"),
        (b"type=subscribe&fired_at=yesterday&data[email]=a%40b.org", "not a time"),
    ],
)
def test_malformed_forms_are_kept_with_a_clear_reason(client, connection, body, message):
    assert _post(client, connection, body).status_code == 400
    event = InboundEvent.objects.get()
    assert event.status == "malformed" and message in event.status_reason and bytes(event.body) == body


@pytest.mark.parametrize(
    "override,message",
    [
        ({"data[email]": "not-an-address"}, "Not an e-mail address"),
        ({"data[merges][FNAME]": "A" * 101}, "firstName is 101 characters"),
        ({"data[merges][ADDRESS][zip]": "9" * 21}, "postal is 21 characters"),
    ],
)
def test_unmappable_members_go_to_review_and_enqueue_nothing(client, connection, override, message):
    _post(client, connection, dict(_fixture("subscribe"), **override))
    inbound_drain(seconds=0)
    event = InboundEvent.objects.get()
    assert event.status == "needs_review" and message in event.status_reason
    assert not OutboundItem.objects.exists()


def test_unicode_names_and_semicolons_survive(client, connection):
    fields = dict(
        _fixture("subscribe"), **{"data[merges][FNAME]": "Zoë", "data[merges][LNAME]": "Ōtsuka-Ñúñez"}
    )
    connection.settings = {"audiences": {"a6b5da1054": "Donors; Major"}}
    connection.save()
    _post(client, connection, fields)
    inbound_drain(seconds=0)
    payload = _contacts()[0].payload
    assert (payload["firstName"], payload["lastName"]) == ("Zoë", "Ōtsuka-Ñúñez")
    assert payload["tags"] == "Mailchimp: Donors, Major"


_form_key = st.text(alphabet="abcdefgh[]_", min_size=1, max_size=20)
_form_value = st.text(max_size=40)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(pairs=st.lists(st.tuples(_form_key, _form_value), max_size=12), raw=st.binary(max_size=80))
def test_any_form_body_parses_or_is_malformed_never_crashes(pairs, raw):
    for body in (urlencode(pairs).encode(), raw):
        request = WebhookRequest(body=body, headers={}, content_type=FORM, query={}, path_secret=SECRET)
        try:
            parsed = webhooks.parse(request)
        except MalformedPayload:
            continue
        assert parsed.event_type
        if body.strip():
            assert parsed.dedupe_key.startswith("mc:")


@settings(max_examples=150)
@given(
    email=st.emails(),
    first=st.text(max_size=120),
    phone=st.text(max_size=60),
    status=st.sampled_from(["subscribed", "pending", "unsubscribed", "cleaned", "archived", "bogus", ""]),
)
def test_any_member_maps_or_raises_a_clear_error(email, first, phone, status):
    from integrations.common.mapping import MappingContext
    from integrations.types import MappingError

    ctx = MappingContext(tenant_slug="alpha", time_zone="UTC", source_name="Mailchimp")
    payload = {
        "type": "member",
        "fired_at": "",
        "data": {"email_address": email, "status": status, "merge_fields": {"FNAME": first, "PHONE": phone}},
    }
    try:
        outcome = HANDLERS["member"](ctx, payload)
    except MappingError as exc:
        assert str(exc)
        return
    for request in outcome.requests:
        assert request.external_id == subscriber_hash(email)


def test_every_handled_event_type_has_a_fixture():
    names = {p.stem for p in (FIXTURES / "mailchimp" / "fixtures").glob("*.json")}
    assert set(HANDLERS) == names
