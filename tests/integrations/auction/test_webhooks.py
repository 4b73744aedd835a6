import base64
import hashlib
import hmac
import json
import time

import pytest

from integrations.auction import webhooks
from integrations.auction.mapping import HANDLERS
from integrations.models import InboundEvent
from sync.models import OutboundItem
from tests.integrations.conftest import FIXTURES, fixture_bytes

SECRET = "auction-relay-secret-current"
OLD_SECRET = "auction-relay-secret-previous"
PREMIUMS = {"GALA-SEAT": 301, "LOT-12": 302, "sponsorship": 303}


@pytest.fixture
def case(webhook_case):
    return webhook_case(
        "auction",
        SECRET,
        sign=lambda body, secret: {"HTTP_X_SIGNATURE": webhooks.sign(body, secret)},
        default_project_code="",
        settings={"premium_map": PREMIUMS},
        project_code_map={"GALA26": "GALA-2026"},
    )


@pytest.fixture
def connection(case):
    return case.connection


def _post(case, body: bytes, headers: dict, *, connection=None):
    return case.post(body, headers=headers, connection=connection)


def _send(case, name: str, secret=SECRET):
    return case.send(name, secret=secret)


def test_default_scheme_is_hex_hmac_sha256_of_the_raw_body(case, connection):
    body = fixture_bytes("auction", "order.completed.json")
    independent = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert _post(case, body, {"HTTP_X_SIGNATURE": independent.upper()}).status_code == 200
    event = InboundEvent.objects.get()
    assert (event.status, event.event_type, event.dedupe_key) == (
        "pending",
        "order.completed",
        "order.completed:evt_20260418_0001",
    )
    assert bytes(event.body) == body and event.headers["X-Signature"] == "[redacted]"
    assert not OutboundItem.objects.exists()


@pytest.mark.parametrize(
    "algorithm,encoding,prefix",
    [("sha512", "base64", ""), ("sha1", "hex", "sha1="), ("sha256", "base64", "sha256=")],
)
def test_per_connection_scheme_with_timestamp(case, connection, algorithm, encoding, prefix):
    connection.settings = {
        **connection.settings,
        "signature_header": "X-Event-Signature",
        "signature_algorithm": algorithm,
        "signature_encoding": encoding,
        "signature_prefix": prefix,
        "timestamp_header": "X-Event-Timestamp",
    }
    connection.save()
    body = fixture_bytes("auction", "order.voided.json")
    ts = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{ts}.".encode() + body, getattr(hashlib, algorithm)).digest()
    signature = prefix + (digest.hex() if encoding == "hex" else base64.b64encode(digest).decode())
    headers = {"HTTP_X_EVENT_SIGNATURE": signature, "HTTP_X_EVENT_TIMESTAMP": str(ts)}
    assert _post(case, body, headers).status_code == 200
    stale = {**headers, "HTTP_X_EVENT_TIMESTAMP": str(ts - 301)}
    assert _post(case, body, stale).status_code == 400
    assert "tolerance" in InboundEvent.objects.order_by("id").last().status_reason


def test_rotated_secrets_both_verify(case):
    case.add_pending_secret(OLD_SECRET)
    assert _send(case, "order.completed.json", secret=OLD_SECRET).status_code == 200
    assert _send(case, "order.voided.json", secret=SECRET).status_code == 200


@pytest.mark.parametrize(
    "headers,reason",
    [
        ({}, "missing X-Signature header"),
        ({"HTTP_X_SIGNATURE": "00ff"}, "does not match any configured secret"),
        ({"HTTP_X_SIGNATURE": webhooks.sign(b"{}", SECRET)}, "does not match any configured secret"),
    ],
)
def test_bad_signatures_are_refused_and_change_nothing(case, headers, reason):
    case.assert_refused(_post(case, fixture_bytes("auction", "order.completed.json"), headers), reason)


def test_tampered_body_is_refused(case, connection):
    body = fixture_bytes("auction", "order.completed.json")
    header = webhooks.sign(body, SECRET)
    tampered = body.replace(b'"1200.00"', b'"12.00"')
    assert _post(case, tampered, {"HTTP_X_SIGNATURE": header}).status_code == 400


def test_missing_timestamp_and_wrong_prefix_are_refused(case, connection):
    connection.settings = {**connection.settings, "timestamp_header": "X-Ts", "signature_prefix": "sha256="}
    connection.save()
    body = fixture_bytes("auction", "order.completed.json")
    assert _post(case, body, {"HTTP_X_SIGNATURE": "sha256=abc"}).status_code == 400
    assert _post(case, body, {"HTTP_X_SIGNATURE": "abc", "HTTP_X_TS": "1"}).status_code == 400
    reasons = list(InboundEvent.objects.order_by("id").values_list("status_reason", flat=True))
    assert "missing X-Ts header" in reasons[0] and "does not start with 'sha256='" in reasons[1]


def test_unknown_algorithm_setting_is_reported(case, connection):
    connection.settings = {**connection.settings, "signature_algorithm": "md5"}
    connection.save()
    assert _send(case, "order.completed.json").status_code == 400
    assert "signature_algorithm must be one of" in InboundEvent.objects.get().status_reason


def test_valid_signature_on_another_tenants_url_is_refused(case):
    other = case.outsider("bravo-auction-secret")
    case.assert_outsider_refuses_our_signature(case.send("order.completed.json", connection=other))


def test_dedupe_key_is_derived_when_there_is_no_event_id(case, connection):
    assert _send(case, "order.refunded.json").status_code == 200
    assert _send(case, "order.refunded.json").status_code == 200
    keys = list(InboundEvent.objects.order_by("id").values_list("status", "dedupe_key"))
    assert keys == [("pending", "order.refunded:order:A1001:lines:1,5"), ("duplicate", None)]
    second = json.loads(fixture_bytes("auction", "order.refunded.json"))
    second["order"]["lines"] = [second["order"]["lines"][0] | {"line_no": 2, "type": "auction_win"}]
    body = json.dumps(second).encode()
    assert _post(case, body, {"HTTP_X_SIGNATURE": webhooks.sign(body, SECRET)}).status_code == 200
    assert InboundEvent.objects.filter(status="pending").count() == 2  # a second partial refund is kept


def test_unknown_event_type_is_ignored_and_malformed_is_kept(case, connection):
    body = b'{"event_type": "order.shipped", "order": {"id": "A9", "lines": []}}'
    assert _post(case, body, {"HTTP_X_SIGNATURE": webhooks.sign(body, SECRET)}).status_code == 200
    bad = b'{"event_type": "order.completed", "order": {"id": "A9", "lines": "none"}}'
    assert _post(case, bad, {"HTTP_X_SIGNATURE": webhooks.sign(bad, SECRET)}).status_code == 400
    assert list(InboundEvent.objects.order_by("id").values_list("status", flat=True)) == [
        "ignored",
        "malformed",
    ]


def test_every_handled_event_type_has_a_fixture():
    names = {p.name.removesuffix(".json") for p in (FIXTURES / "auction" / "fixtures").glob("*.json")}
    assert set(HANDLERS) == names
