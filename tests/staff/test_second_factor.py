"""Staff logins: lockout after repeated failures, a TOTP second factor required for integration
admins (optional for others), enrolment in the admin, recovery codes, and the reset command."""

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants.models import AuditEvent
from tests.conftest import plain_force_login

LOGIN = "/admin/login/"
PASSWORD = "pw-a-long-staff-password"


def _user(name, group=None, **extra):
    user = get_user_model().objects.create_user(name, f"{name}@example.org", PASSWORD, is_staff=True, **extra)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


def _device(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def _code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def _login(client, user, otp_token=""):
    return client.post(
        f"{LOGIN}?next=/admin/",
        {"username": user.get_username(), "password": PASSWORD, "otp_token": otp_token},
    )


@pytest.fixture
def admin_user(db):
    return _user("int-admin", "Integration admin")


@pytest.fixture
def cs_user(db):
    return _user("cs-user", "Customer success")


def test_repeated_failures_lock_the_account_even_with_the_right_password(client, cs_user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(LOGIN, {"username": "cs-user", "password": "wrong"})
    locked = _login(client, cs_user)
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_customer_success_may_log_in_without_a_second_factor(client, cs_user):
    assert _login(client, cs_user).status_code == 302
    assert client.get("/admin/?sections=1").status_code == 200


def test_an_integration_admin_must_enrol_before_using_the_admin(client, admin_user):
    assert _login(client, admin_user).status_code == 302
    response = client.get("/admin/sync/tenanthealth/")
    assert response.status_code == 302 and response.url == reverse("admin:staff_second_factor")

    page = client.get(reverse("admin:staff_second_factor")).content.decode()
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1)
    assert "<svg" in page and secret
    device = TOTPDevice.objects.get(user=admin_user, confirmed=False)

    wrong = client.post(reverse("admin:staff_second_factor"), {"token": "000000"})
    assert "does not match" in wrong.content.decode()
    TOTPDevice.objects.filter(pk=device.pk).update(
        throttling_failure_count=0, throttling_failure_timestamp=None
    )
    done = client.post(reverse("admin:staff_second_factor"), {"token": _code(device)}).content.decode()
    codes = re.search(r'<pre id="recovery-codes">(.*?)</pre>', done, re.S).group(1).split()
    assert len(codes) == 10
    assert client.get("/admin/sync/tenanthealth/").status_code == 200
    assert AuditEvent.objects.filter(action="staff.second_factor_enrolled", actor=admin_user).exists()


def test_a_user_with_a_device_needs_the_code_at_login(client, cs_user, settings):
    device = _device(cs_user)
    assert "Enter the code" in _login(client, cs_user).content.decode()
    assert "Enter the code" in _login(client, cs_user, "123456").content.decode()
    # django-otp slows a device down after a wrong code; a moment later the right one opens.
    TOTPDevice.objects.filter(pk=device.pk).update(
        throttling_failure_count=0, throttling_failure_timestamp=None
    )
    assert _login(client, cs_user, _code(device)).status_code == 302
    assert client.get("/admin/?sections=1").status_code == 200


def test_wrong_codes_count_towards_the_lockout(client, cs_user, settings):
    device = _device(cs_user)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(client, cs_user, "000000")
    assert _login(client, cs_user, _code(device)).status_code == 429


def test_a_recovery_code_works_once(client, admin_user):
    _device(admin_user)
    client.force_login(admin_user)
    page = client.post(reverse("admin:staff_second_factor"), {"action": "recovery_codes"}).content.decode()
    code = re.search(r'<pre id="recovery-codes">(.*?)</pre>', page, re.S).group(1).split()[0]
    client.logout()
    assert _login(client, admin_user, code).status_code == 302
    client.logout()
    assert "Enter the code" in _login(client, admin_user, code).content.decode()
    assert StaticToken.objects.filter(device__user=admin_user).count() == 9


def test_an_unverified_session_of_a_user_with_a_device_is_sent_to_login(client, admin_user):
    _device(admin_user)
    plain_force_login(client, admin_user)
    response = client.get("/admin/")
    assert response.status_code == 302 and response.url.startswith(LOGIN)


def test_superusers_need_a_second_factor_outside_debug(client, settings, db):
    root = _user("root", is_superuser=True)
    _login(client, root)
    assert client.get("/admin/").url == reverse("admin:staff_second_factor")
    settings.OTP_REQUIRED_FOR_SUPERUSERS = False
    assert client.get("/admin/?sections=1").status_code == 200


def test_the_reset_command_removes_every_device_and_is_audited(admin_user):
    _device(admin_user)
    out = StringIO()
    call_command("second_factor_reset", "int-admin", stdout=out)
    assert "Removed 1" in out.getvalue()
    assert not TOTPDevice.objects.filter(user=admin_user).exists()
    assert AuditEvent.objects.filter(action="staff.second_factor_reset", via="cli").exists()
