"""Staff second factor: TOTP (an authenticator app) plus one-time recovery codes (django-otp).

Required for members of ``OTP_REQUIRED_GROUPS`` (the "Integration admin" group: it sees every
tenant, donor data and credentials) and, when ``OTP_REQUIRED_FOR_SUPERUSERS``, for superusers;
optional for everyone else, who may still enrol. Any user with a confirmed device must give a
code at login.
"""

from __future__ import annotations

import io

from django.conf import settings
from django.db import transaction
from django_otp import devices_for_user, user_has_device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.qr import write_qrcode_image

from tenants.services import Actor, audit_record

TOTP_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"
RECOVERY_CODES = 10


def second_factor_required(user) -> bool:
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return False
    if user.is_superuser and settings.OTP_REQUIRED_FOR_SUPERUSERS:
        return True
    return user.groups.filter(name__in=settings.OTP_REQUIRED_GROUPS).exists()


def has_second_factor(user) -> bool:
    return user.is_authenticated and user_has_device(user, confirmed=True)


def totp_pending(user) -> TOTPDevice:
    """The user's unconfirmed authenticator device (made on first visit; its secret shown until confirmed)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    return device or TOTPDevice.objects.create(user=user, name=TOTP_NAME, confirmed=False)


def totp_qr_svg(device: TOTPDevice) -> str:
    out = io.BytesIO()
    write_qrcode_image(device.config_url, out)
    return out.getvalue().decode()


def totp_secret(device: TOTPDevice) -> str:
    """The base32 secret, grouped in fours, for typing into an app that cannot scan."""
    from base64 import b32encode

    raw = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


@transaction.atomic
def totp_confirm(*, user, device: TOTPDevice, token: str, actor: Actor) -> list[str] | None:
    """Confirm an enrolment with a code from the app; returns the new recovery codes (None if the code is wrong)."""
    if device.user_id != user.pk or not device.verify_token(token.strip().replace(" ", "")):
        return None
    TOTPDevice.objects.filter(user=user, confirmed=True).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    audit_record(actor=actor, action="staff.second_factor_enrolled", details={"user": user.get_username()})
    return recovery_codes_regenerate(user=user, actor=actor)


@transaction.atomic
def recovery_codes_regenerate(*, user, actor: Actor) -> list[str]:
    """New one-time recovery codes; the old ones stop working. Shown once to the user (django-otp
    keeps static tokens as given, so the database holds them like password-reset links)."""
    device, _ = StaticDevice.objects.get_or_create(
        user=user, name=RECOVERY_NAME, defaults={"confirmed": True}
    )
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    audit_record(actor=actor, action="staff.recovery_codes_generated", details={"user": user.get_username()})
    return codes


def recovery_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


@transaction.atomic
def second_factor_reset(*, user, actor: Actor) -> int:
    """Remove every device of a user (lost phone): they enrol again at their next login."""
    count = 0
    for device in list(devices_for_user(user, confirmed=None)):
        device.delete()
        count += 1
    audit_record(
        actor=actor,
        action="staff.second_factor_reset",
        details={"user": user.get_username(), "devices": count},
    )
    return count
