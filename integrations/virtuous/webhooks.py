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
import hmac
from collections.abc import Mapping
from typing import Any

SIGNATURE_ENCODINGS = ("auto", "hex", "base64")
DEFAULT_SIGNATURE_HEADER = "X-Virtuous-Signature"
_DIGEST_SIZE = hashlib.sha256().digest_size


def sign(body: bytes, secret: str, encoding: str = "hex") -> str:
    """The signature Virtuous is presumed to send for ``body`` (hex or base64 HMAC-SHA256)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
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
    expected = [hmac.new(s.encode(), body, hashlib.sha256).digest() for s in secrets if s]
    # No early exit: the time taken does not depend on which secret or encoding matched.
    matches = [hmac.compare_digest(r, e) for r in received for e in expected]
    return any(matches)


def verify_delivery(*, tenant: Any, body: bytes, headers: Mapping[str, str]) -> bool:
    """Check a Virtuous delivery against the tenant's header and encoding settings and its
    webhook secrets (active and pending, so a rotation overlaps)."""
    from tenants.models import Credential
    from tenants.selectors import credential_secrets_for_verification

    secrets = credential_secrets_for_verification(
        tenant=tenant, platform=Credential.Platform.VIRTUOUS, purpose=Credential.Purpose.WEBHOOK_SECRET
    )
    return verify_signature(
        body=body,
        header_value=headers.get(tenant.virtuous_signature_header or DEFAULT_SIGNATURE_HEADER),
        secrets=secrets,
        encoding=tenant.virtuous_signature_encoding,
    )


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
