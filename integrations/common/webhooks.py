"""What every provider's webhook module shares: the verdict type, reading JSON bodies, parsing safely."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from integrations.common.mapping import DATA_ERRORS
from integrations.types import MalformedPayload, ParsedEvent, WebhookRequest


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    reason: str = ""


VERIFIED = VerifyResult(True)
NO_SECRET = VerifyResult(False, "no webhook secret is set for this connection")


class _Parses(Protocol):
    parse: Callable[[WebhookRequest], ParsedEvent]


def event_parse(spec: _Parses, request: WebhookRequest) -> ParsedEvent:
    """Run a provider's parser; a value it did not expect (a date that is not a date) makes the
    delivery malformed (recorded with the reason), never a 500 that records nothing."""
    try:
        return spec.parse(request)
    except MalformedPayload:
        raise
    except DATA_ERRORS as exc:
        raise MalformedPayload(f"Cannot read this payload: {type(exc).__name__}: {exc}"[:500]) from exc


def load_json(body: bytes, *, parse_float: Callable[[str], Any] = Decimal) -> Any:
    """A JSON body, every non-integer number a Decimal unless the provider says otherwise;
    bytes that are not JSON are a MalformedPayload with the parser's reason."""
    try:
        return json.loads(body, parse_float=parse_float)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedPayload(f"Body is not JSON: {exc}") from exc


def load_json_object(
    body: bytes, *, expected: str = "Expected a JSON object", **options: Any
) -> dict[str, Any]:
    """A JSON body that must be one object (``expected`` is the reason when it is not)."""
    data = load_json(body, **options)
    if not isinstance(data, dict):
        raise MalformedPayload(expected)
    return data
