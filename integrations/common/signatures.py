"""Signature helpers for webhook verification: HMACs, constant-time comparison, headers, timestamps.

Each provider keeps its own scheme (what is signed, how the header reads); the pieces that must be
done the same careful way everywhere live here.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

from integrations.common.webhooks import NO_SECRET, VERIFIED, VerifyResult
from integrations.types import WebhookRequest

ALGORITHMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512, "sha1": hashlib.sha1}


def hmac_digest(secret: str, message: bytes, algorithm: str = "sha256") -> bytes:
    """The raw HMAC of ``message`` under ``secret`` (UTF-8) with one of ``ALGORITHMS``."""
    return hmac.new(secret.encode(), message, ALGORITHMS[algorithm]).digest()


def header_value(headers: Mapping[str, str], name: str) -> str:
    """A header by name, whatever its case; "" when absent."""
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), "")


def signature_header(
    headers: Mapping[str, str], name: str, secrets: list[str]
) -> tuple[str, VerifyResult | None]:
    """The signature header's value, or the refusal when it is missing or no secret is configured."""
    value = header_value(headers, name).strip()
    if not value:
        return "", VerifyResult(False, f"missing {name} header")
    if not secrets:
        return "", NO_SECRET
    return value, None


def matches_any(given: str | bytes, candidates: Iterable[str | bytes]) -> bool:
    """Whether ``given`` equals any candidate, each compared in constant time and all of them
    compared, so the time taken does not tell which one matched."""
    given_bytes = given.encode() if isinstance(given, str) else given
    results = [hmac.compare_digest(given_bytes, c.encode() if isinstance(c, str) else c) for c in candidates]
    return any(results)


def timestamp_outside(timestamp: int, tolerance: int) -> VerifyResult | None:
    """The refusal for a signed timestamp further than ``tolerance`` seconds from now, else None."""
    if abs(time.time() - timestamp) > tolerance:
        return VerifyResult(False, f"timestamp outside the {tolerance} s tolerance")
    return None


def path_secret_matches(request: WebhookRequest, secrets: list[str]) -> VerifyResult:
    """For platforms that sign nothing: the secret we put in the webhook URL's path, against every
    configured secret (active and pending), each compared in constant time."""
    if not request.path_secret:
        return VerifyResult(False, "missing secret in the webhook URL path")
    if not secrets:
        return NO_SECRET
    if matches_any(request.path_secret, secrets):
        return VERIFIED
    return VerifyResult(False, "the URL's secret does not match any configured secret")


def path_secret_handshake(request: WebhookRequest, secrets: list[str]) -> tuple[int, str]:
    """A platform's GET on a path-secret URL: 200 for the right secret, 404 without one, else 403."""
    if path_secret_matches(request, secrets).ok:
        return 200, "ok"
    return (404, "unknown webhook URL") if not request.path_secret else (403, "forbidden")
