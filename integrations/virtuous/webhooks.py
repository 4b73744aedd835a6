"""Verifying that an inbound delivery really comes from the tenant's Virtuous subscription.

Virtuous has not published its signature scheme (spec sections 3 and 5.2): the docs presume
HMAC-SHA256 over the raw body in a header such as ``X-Virtuous-Signature`` as hex, a support
article says Base64. So the header name and encoding are per-tenant settings, ``auto`` accepts
either encoding, and both the current and the previous secret verify during a rotation.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib

from integrations.common.signatures import hmac_digest, matches_any

SIGNATURE_ENCODINGS = ("auto", "hex", "base64")
DEFAULT_SIGNATURE_HEADER = "X-Virtuous-Signature"
_DIGEST_SIZE = hashlib.sha256().digest_size


def sign(body: bytes, secret: str, encoding: str = "hex") -> str:
    """The signature Virtuous is presumed to send for ``body`` (hex or base64 HMAC-SHA256)."""
    digest = hmac_digest(secret, body)
    if encoding == "hex":
        return digest.hex()
    if encoding == "base64":
        return base64.b64encode(digest).decode()
    raise ValueError(f"encoding must be 'hex' or 'base64', not {encoding!r}.")


def verify_signature(
    *, body: bytes, header_value: str | None, secrets: list[str], encoding: str = "auto"
) -> bool:
    """True when ``header_value`` is the HMAC-SHA256 of the raw ``body`` under any of ``secrets``.

    Accepts an optional ``sha256=`` prefix. Every candidate is compared in constant time.
    """
    if encoding not in SIGNATURE_ENCODINGS:
        raise ValueError(f"encoding must be one of {SIGNATURE_ENCODINGS}, not {encoding!r}.")
    if not header_value or not any(secrets):
        return False
    value = header_value.strip()
    if value[:7].lower() == "sha256=":
        value = value[7:].strip()
    received = _decode(value, encoding)
    expected = [hmac_digest(s, body) for s in secrets if s]
    # No early exit: the time taken does not depend on which secret or encoding matched.
    matches = [matches_any(r, expected) for r in received]
    return any(matches)


def _decode(value: str, encoding: str) -> list[bytes]:
    candidates: list[bytes] = []
    if encoding in ("auto", "hex"):
        with contextlib.suppress(ValueError):
            candidates.append(bytes.fromhex(value))
    if encoding in ("auto", "base64"):
        for altchars in (None, b"-_"):  # standard and URL-safe alphabets
            with contextlib.suppress(binascii.Error, ValueError):
                candidates.append(base64.b64decode(value.encode(), altchars=altchars, validate=True))
    return [c for c in candidates if len(c) == _DIGEST_SIZE]
