"""Shared personas. Every fixture set includes an outsider tenant, so isolation is always tested."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from integrations.models import Connection
from integrations.services import connection_create
from tenants import services
from tenants.models import Credential, Tenant

VIRTUOUS_TOKEN = "vt_live_tenant_a_secret_TOKEN_1234"
OTHER_VIRTUOUS_TOKEN = "vt_live_tenant_b_secret_TOKEN_9876"


_plain_force_login = Client.force_login


def plain_force_login(client: Client, user, backend=None) -> None:
    """Log in without touching the second factor (to test what an unverified session sees)."""
    _plain_force_login(client, user, backend)


@pytest.fixture(autouse=True)
def verified_force_login(monkeypatch):
    """``client.force_login`` gives a session verified with a second factor, as a real login with a
    code does, for every user who must have one (admin tests are about the admin, not the login)."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from staff.second_factor import has_second_factor, second_factor_required

    def force_login(client: Client, user, backend=None) -> None:
        _plain_force_login(client, user, backend)
        if second_factor_required(user) or has_second_factor(user):
            device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
            device = device or TOTPDevice.objects.create(user=user, name="test", confirmed=True)
            session = client.session
            session[DEVICE_ID_SESSION_KEY] = device.persistent_id
            session.save()

    monkeypatch.setattr(Client, "force_login", force_login)


@pytest.fixture
def tenant(db) -> Tenant:
    t = services.tenant_create(slug="alpha", name="Alpha Food Bank")
    services.credential_set(
        tenant=t,
        platform=Credential.Platform.VIRTUOUS,
        purpose=Credential.Purpose.API_TOKEN,
        secret=VIRTUOUS_TOKEN,
    )
    return t


@pytest.fixture
def other_tenant(db) -> Tenant:
    """The outsider: its rows must never be reachable from the first tenant's context."""
    t = services.tenant_create(slug="bravo", name="Bravo Animal Rescue")
    services.credential_set(
        tenant=t,
        platform=Credential.Platform.VIRTUOUS,
        purpose=Credential.Purpose.API_TOKEN,
        secret=OTHER_VIRTUOUS_TOKEN,
    )
    return t


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser("root-admin", "root@example.org", "pw-root-admin")


@pytest.fixture
def staff_user(db):
    """A customer-success user with model permissions but no 'see all tenants' permission."""
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("cs-user", "cs@example.org", "pw-cs-user", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="tenants",
            codename__in=[
                "view_tenant",
                "change_tenant",
                "view_credential",
                "add_credential",
                "view_auditevent",
            ],
        )
    )
    return user


@pytest.fixture
def make_connection():
    """Create a connection (default project GEN), optionally with its webhook secret."""

    def _make(tenant, provider: str, *, secret: str | None = None, **kwargs) -> Connection:
        kwargs.setdefault("default_project_code", "GEN")
        connection = connection_create(tenant=tenant, provider=provider, **kwargs)
        if secret:
            services.credential_set(
                tenant=tenant,
                platform=provider,
                purpose=Credential.Purpose.WEBHOOK_SECRET,
                secret=secret,
                scope=connection.credential_scope,
            )
        return connection

    return _make


def pytest_sessionfinish(session, exitstatus):
    """Remove this run's SQLite WAL side files; Django deletes the database file itself."""
    import os
    from pathlib import Path

    for leftover in (Path(__file__).resolve().parents[1] / "var").glob(f"test-db-{os.getpid()}.sqlite3-*"):
        leftover.unlink(missing_ok=True)
