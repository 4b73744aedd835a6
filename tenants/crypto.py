"""Encryption of credentials at rest (MultiFernet, so keys rotate without downtime)."""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class CredentialDecryptError(Exception):
    """A stored credential cannot be decrypted with any configured key."""


@lru_cache(maxsize=4)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("CREDENTIAL_KEYS is empty: credentials cannot be encrypted.")
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "CREDENTIAL_KEYS holds a value that is not a Fernet key (32 url-safe base64 bytes)."
        ) from exc


def _fernet() -> MultiFernet:
    return _multifernet(tuple(settings.CREDENTIAL_KEYS))


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode("ascii")).decode()
    except InvalidToken as exc:
        raise CredentialDecryptError("no configured key decrypts this credential") from exc


@lru_cache(maxsize=4096)
def decrypt_cached(token: str) -> str:
    """``decrypt``, remembered per process by ciphertext: for the secrets every webhook checks.

    A rotated secret is a new ciphertext, so it is a new key here and takes effect at once; a
    retired one stops being looked up. Only verification secrets go through this, never tokens
    the admin can read back.
    """
    return decrypt(token)


def reencrypt(token: str) -> str:
    """Re-encrypt under the newest key (the first in CREDENTIAL_KEYS)."""
    try:
        return _fernet().rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken as exc:
        raise CredentialDecryptError("no configured key decrypts this credential") from exc


def validate_keys(keys: list[str]) -> str | None:
    """Return a problem description, or None when the keys are usable."""
    if not keys:
        return "CREDENTIAL_KEYS is not set"
    try:
        _multifernet(tuple(keys))
    except ImproperlyConfigured as exc:
        return str(exc)
    return None
