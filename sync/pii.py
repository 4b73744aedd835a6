"""Masking stored bodies for display: secrets from everyone, donor data from staff who may not
see it (``sync.view_donor_pii``).

Bodies are stored as received, so a sender's credential can sit inside one (a Constant Contact
``api_key``, an ``Authorization`` echoed in a payload). Keys that look like secrets are masked at
any depth, case- and separator-insensitively, for every viewer.
"""

from __future__ import annotations

from typing import Any

PII_PERMISSION = "sync.view_donor_pii"
MASK = "•••"
# Key fragments (lower-cased, without separators) that name a person or how to reach them.
_PII_FRAGMENTS = (
    "firstname",
    "lastname",
    "middlename",
    "fullname",
    "contactname",
    "donorname",
    "email",
    "phone",
    "address",
    "street",
    "city",
    "postal",
    "zip",
    "birth",
    "comment",
    "note",
)
_PII_EXACT = {"name", "first", "last", "state", "country"}
# Key fragments (lower-cased, without separators) that name a credential. Any key containing one
# is masked with everything under it (an ``authorization`` object is a secret as a whole).
_SECRET_FRAGMENTS = (
    "apikey",
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "authorization",
    "credential",
    "privatekey",
    "signingkey",
    "accesskey",
    "sessionid",
    "cookie",
    "bearer",
    "signature",
)
_SECRET_EXACT = {"key", "pass", "pwd", "auth", "sig", "jwt", "otp", "pin"}


def _fold(key: Any) -> str:
    return "".join(ch for ch in str(key).lower() if ch.isalnum())


def is_pii_key(key: str) -> bool:
    folded = _fold(key)
    return folded in _PII_EXACT or any(fragment in folded for fragment in _PII_FRAGMENTS)


def is_secret_key(key: str) -> bool:
    folded = _fold(key)
    return folded in _SECRET_EXACT or any(fragment in folded for fragment in _SECRET_FRAGMENTS)


def mask_secrets(value: Any) -> Any:
    """The same structure with every value under a secret-like key replaced by a mask."""
    if isinstance(value, dict):
        return {
            k: MASK if is_secret_key(k) and v not in (None, "") else mask_secrets(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


def mask_pii(value: Any) -> Any:
    """The same structure with every personal value and every secret replaced by a mask (ids and
    amounts kept)."""
    if isinstance(value, dict):
        return {
            k: (
                MASK
                if v not in (None, "")
                and (is_secret_key(k) or (is_pii_key(k) and not isinstance(v, dict | list)))
                else mask_pii(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_pii(v) for v in value]
    return value


def mask_for_display(user, value: Any) -> Any:
    """A stored body as this user may see it: secrets always masked, donor data unless permitted."""
    return mask_secrets(value) if user_sees_pii(user) else mask_pii(value)


def user_sees_pii(user) -> bool:
    return bool(user.is_active and user.has_perm(PII_PERMISSION))
