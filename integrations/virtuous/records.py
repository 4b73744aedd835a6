"""The one module that knows Virtuous's JSON keys for the records it sends us (contacts, people).

Everything else reads a Virtuous record through these helpers, so a change in Virtuous's shape is
one edit here.
"""

from __future__ import annotations


def contact_primary_individual(contact: dict) -> dict:
    """The primary individual of a Virtuous contact (else the first); {} when it has none."""
    people = [p for p in contact.get("contactIndividuals") or [] if isinstance(p, dict)]
    return next((p for p in people if p.get("isPrimary")), people[0] if people else {})


def contact_email(contact: dict) -> str:
    """The primary individual's e-mail (primary method first), lower-cased; "" when none."""
    methods = [
        m for m in contact_primary_individual(contact).get("contactMethods") or [] if isinstance(m, dict)
    ]
    emails = [
        str(m.get("value") or "")
        for m in sorted(methods, key=lambda m: not m.get("isPrimary"))
        if "email" in str(m.get("type") or "").lower() and m.get("value")
    ]
    return (emails[0] if emails else str(contact.get("email") or "")).strip().lower()
