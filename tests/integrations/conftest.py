import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent


def fixture_bytes(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / "fixtures" / name).read_bytes()


def fixture_json(provider: str, name: str):
    return json.loads(fixture_bytes(provider, name))


@pytest.fixture
def webhook_case(client, tenant, other_tenant, make_connection):
    """Build a provider's shared webhook test case (tests/integrations/webhook_case.py)."""
    from tests.integrations.webhook_case import WebhookCase

    def _case(
        provider, secret, *, sign=None, content_type="application/json", project_code_map=None, **kwargs
    ):
        connection = make_connection(tenant, provider, secret=secret, **kwargs)
        if project_code_map is not None:
            connection.project_code_map = project_code_map
            connection.save()
        return WebhookCase(
            client=client,
            provider=provider,
            secret=secret,
            connection=connection,
            tenant=tenant,
            other_tenant=other_tenant,
            make_connection=make_connection,
            sign=sign,
            content_type=content_type,
        )

    return _case
