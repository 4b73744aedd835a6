"""The shared webhook test case: what every provider's ``test_webhooks.py`` needs, written once.

In the manner of Zulip's ``WebhookTestCase``: a provider's tests declare their provider, secret
and how a delivery is signed, and get a tenant's connection (with its webhook secret), the
outsider tenant, signed posts of a fixture to the receive URL, the secret-rotation step, and
assertions on the stored ``InboundEvent``. Use it through the ``webhook_case`` fixture::

    @pytest.fixture
    def case(webhook_case):
        return webhook_case("donorbox", SECRET, sign=lambda body, secret: {...headers...})
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.test import Client
from django.urls import reverse

from integrations.models import Connection, InboundEvent
from sync.inbound.drain import inbound_drain
from sync.models import OutboundItem
from tenants.models import Tenant
from tenants.services import credential_set
from tests.integrations.conftest import fixture_bytes

# (body, secret) -> the request headers (Django's HTTP_* form) that sign ``body`` with ``secret``.
Signer = Callable[[bytes, str], dict[str, str]]


@dataclass
class WebhookCase:
    client: Client
    provider: str
    secret: str
    connection: Connection
    tenant: Tenant
    other_tenant: Tenant
    make_connection: Callable[..., Connection]
    sign: Signer | None = None
    content_type: str = "application/json"

    def fixture(self, name: str) -> bytes:
        return fixture_bytes(self.provider, name)

    def url(self, connection: Connection | None = None, *, path_secret: str | None = None) -> str:
        """The receive URL; with ``path_secret`` the form that carries a secret in its path."""
        token = (connection or self.connection).webhook_token
        if path_secret is None:
            return reverse("integrations:receive", args=[token])
        return reverse("integrations:receive-with-secret", args=[token, path_secret])

    def post(
        self,
        body: bytes,
        *,
        connection: Connection | None = None,
        headers: dict[str, str] | None = None,
        secret: str | None = None,
        path_secret: str | None = None,
        content_type: str | None = None,
    ):
        """POST ``body``: with ``headers`` as given, else signed with ``secret`` (default: ours)."""
        if headers is None:
            headers = self.sign(body, secret or self.secret) if self.sign else {}
        return self.client.post(
            self.url(connection, path_secret=path_secret),
            data=body,
            content_type=self.content_type if content_type is None else content_type,
            **headers,
        )

    def send(self, name: str, **kwargs: Any):
        """POST the named fixture, signed."""
        return self.post(self.fixture(name), **kwargs)

    def add_pending_secret(self, secret: str) -> None:
        """Start a rotation: ``secret`` is accepted beside the active one until activated."""
        credential_set(
            tenant=self.tenant,
            platform=self.provider,
            purpose="webhook_secret",
            secret=secret,
            scope=self.connection.credential_scope,
            activate=False,
        )

    def outsider(self, secret: str, **kwargs: Any) -> Connection:
        """The outsider tenant's connection of the same provider, with its own secret."""
        return self.make_connection(self.other_tenant, self.provider, secret=secret, **kwargs)

    def stored(self) -> InboundEvent:
        """The one event stored so far."""
        return InboundEvent.objects.get()

    def statuses(self) -> list[str]:
        return list(InboundEvent.objects.order_by("id").values_list("status", flat=True))

    def assert_refused(self, response, reason: str) -> InboundEvent:
        """A refused delivery: 400, recorded as rejected with ``reason``, and nothing enqueued."""
        assert response.status_code == 400
        event = self.stored()
        assert event.status == "rejected" and event.signature_valid is False
        assert reason in event.status_reason
        inbound_drain(seconds=0)
        assert not OutboundItem.objects.exists()
        return event

    def assert_outsider_refuses_our_signature(self, response) -> InboundEvent:
        """Our valid signature on the outsider's URL: refused and recorded under the outsider."""
        assert response.status_code == 400
        event = self.stored()
        assert event.tenant == self.other_tenant and event.status == "rejected"
        return event
