import json
from pathlib import Path

import pytest

from integrations.models import Connection
from integrations.services import connection_create
from tenants import services as tenant_services
from tenants.models import Credential

FIXTURES = Path(__file__).parent


def fixture_bytes(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / "fixtures" / name).read_bytes()


def fixture_json(provider: str, name: str):
    return json.loads(fixture_bytes(provider, name))


@pytest.fixture
def make_connection():
    def _make(tenant, provider: str, *, secret: str | None = None, **kwargs) -> Connection:
        kwargs.setdefault("default_project_code", "GEN")
        connection = connection_create(tenant=tenant, provider=provider, **kwargs)
        if secret:
            tenant_services.credential_set(
                tenant=tenant,
                platform=provider,
                purpose=Credential.Purpose.WEBHOOK_SECRET,
                secret=secret,
                scope=connection.credential_scope,
            )
        return connection

    return _make
