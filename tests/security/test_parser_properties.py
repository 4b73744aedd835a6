"""Every provider's parser and mapper, fed odd and hostile values: no crash, only clear refusals.

A parser either understands a body or raises MalformedPayload; a mapper, run the way the inbound
queue runs it (``event_map``), either returns an Outcome or raises MappingError/MalformedPayload.
Anything else would leave an event retried and failing with a stack trace instead of a reason. Mapped gifts never carry a non-positive amount or
sub-cent precision (Virtuous would refuse them, or worse, store them).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.common.mapping import MappingContext, event_map
from integrations.common.webhooks import event_parse
from integrations.registry import provider_get, provider_keys
from integrations.types import MalformedPayload, MappingError, Outcome, WebhookRequest

FIXTURES = Path(__file__).resolve().parents[1] / "integrations"

ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.sampled_from(
        [
            0,
            -1,
            -0.01,
            0.001,
            1e308,
            float("nan"),
            "0",
            "-5.00",
            "1.999",
            "12.345",
            "1e400",
            "NaN",
            "Infinity",
            "-0",
        ]
    ),
    st.sampled_from(["XXX", "usd", "ZZZ", "", "€", "BTC"]),  # currencies nobody expects
    st.sampled_from(
        [
            "0001-01-01",
            "9999-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
            "2026-02-30",
            "yesterday",
            -1,
            253402300800,
        ]
    ),
    st.text(max_size=50),
    st.text(alphabet="名前🎁ÅÉ\u200b\u202e\x00", min_size=1, max_size=20),
    st.just("x" * 5000),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _encode(key: str, payload: Any) -> bytes:
    if "form" in provider_get(key).content_types[0]:
        return urlencode(payload).encode()
    return json.dumps(payload, default=str).encode()


def _samples() -> list[tuple[str, str, Any]]:
    """(provider, event type, payload) for every fixture a provider can parse and map."""
    out = []
    for key in provider_keys():
        spec = provider_get(key)
        content_type = spec.content_types[0]
        for path in sorted((FIXTURES / key / "fixtures").glob("*.json")):
            body = path.read_bytes()
            if "form" in content_type:  # form-posting sources' fixtures are their fields as JSON
                body = _encode(key, json.loads(body))
            request = WebhookRequest(body=body, headers=SVIX, content_type=content_type, query={})
            try:
                event_type = spec.parse(request).event_type
                payload = spec.load(body, content_type)
            except MalformedPayload:
                continue
            if event_type in spec.handlers and spec.kind == "source":
                out.append((key, event_type, payload))
    return out


SVIX = {"svix-id": "msg_fixture"}  # Svix senders name each message in a header
SAMPLES = _samples()


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _paths(v, (*prefix, k))] or [prefix]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _paths(v, (*prefix, i))] or [prefix]
    return [prefix]


def _replace(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


def _context(key: str) -> MappingContext:
    return MappingContext(
        tenant_slug="alpha",
        time_zone="America/Chicago",
        source_name=provider_get(key).default_source_name,
        default_project_code="GEN",
    )


def _check_amounts(outcome: Outcome) -> None:
    for request in outcome.requests:
        amount = request.payload.get("amount")
        if amount is None or request.operation not in ("gift_transaction", "recurring_gift_create"):
            continue
        value = Decimal(str(amount))
        assert value.is_finite() and value > 0, f"{request.operation} with amount {amount!r}"
        assert value == value.quantize(Decimal("0.01")), f"sub-cent amount {amount!r}"
        json.dumps(request.payload, default=str)


def test_every_source_provider_has_a_sample_to_mutate():
    sources = {k for k in provider_keys() if provider_get(k).kind == "source"}
    assert {s[0] for s in SAMPLES} == sources


@pytest.mark.parametrize("key", provider_keys())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
            lambda children: (
                st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
            ),
            max_leaves=12,
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_parsers_understand_a_body_or_call_it_malformed(key, body):
    spec = provider_get(key)
    for content_type in spec.content_types:
        request = WebhookRequest(body=body, headers={}, content_type=content_type, query={})
        try:
            parsed = event_parse(spec, request)
        except MalformedPayload:
            continue
        assert isinstance(parsed.event_type, str) and isinstance(parsed.dedupe_key, str)


@pytest.mark.parametrize("key,event_type,payload", SAMPLES, ids=[f"{s[0]}-{s[1]}" for s in SAMPLES])
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mappers_turn_odd_values_into_outcomes_or_clear_errors(key, event_type, payload, data):
    paths = _paths(payload)
    mutated = payload
    for path in data.draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3)):
        mutated = _replace(mutated, path, data.draw(ODD))
    spec = provider_get(key)
    request = WebhookRequest(
        body=_encode(key, mutated), headers=SVIX, content_type=spec.content_types[0], query={}
    )
    try:
        event_parse(spec, request)  # the receive view reads the same odd values first
    except MalformedPayload as exc:
        assert str(exc)
    handler = spec.handlers[event_type]
    try:
        outcome = event_map(handler, _context(key), mutated)
    except (MappingError, MalformedPayload) as exc:
        assert str(exc)  # a reason a person can read
        return
    assert isinstance(outcome, Outcome)
    _check_amounts(outcome)
