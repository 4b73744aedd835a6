"""Masking donor personal data for staff who may not see it (``sync.view_donor_pii``)."""

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


def is_pii_key(key: str) -> bool:
    folded = "".join(ch for ch in str(key).lower() if ch.isalnum())
    return folded in _PII_EXACT or any(fragment in folded for fragment in _PII_FRAGMENTS)


def mask_pii(value: Any) -> Any:
    """The same structure with every personal value replaced by a mask (ids and amounts kept)."""
    if isinstance(value, dict):
        return {
            k: (
                MASK
                if is_pii_key(k) and v not in (None, "") and not isinstance(v, dict | list)
                else mask_pii(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_pii(v) for v in value]
    return value


def user_sees_pii(user) -> bool:
    return bool(user.is_active and user.has_perm(PII_PERMISSION))
