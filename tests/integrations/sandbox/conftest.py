"""A sandbox organisation, an outsider organisation, and a tiny client for the sandbox API."""

from __future__ import annotations

import json
from typing import Any

import pytest

from integrations.sandbox import limits, services
from integrations.sandbox.models import SandboxCounters, SandboxOrganization

BASE = "/sandbox/virtuous/api/"


class SandboxApi:
    """Calls the sandbox through Django's test client with one organisation's token."""

    def __init__(self, client, token: str) -> None:
        self.client = client
        self.token = token

    def call(self, method: str, path: str, body: Any = None, **query: Any):
        url = BASE + path
        if query:
            url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        kwargs: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {self.token}"}
        if body is not None:
            kwargs.update(data=json.dumps(body), content_type="application/json")
        return getattr(self.client, method.lower())(url, **kwargs)

    def get(self, path: str, **query: Any):
        return self.call("GET", path, **query)

    def post(self, path: str, body: Any = None, **query: Any):
        return self.call("POST", path, body, **query)

    def put(self, path: str, body: Any = None, **query: Any):
        return self.call("PUT", path, body, **query)


@pytest.fixture
def org_and_token(db) -> tuple[SandboxOrganization, str]:
    return services.sandbox_org_create(name="Alpha Food Bank")


@pytest.fixture
def org(org_and_token) -> SandboxOrganization:
    return org_and_token[0]


@pytest.fixture
def api(client, org_and_token) -> SandboxApi:
    return SandboxApi(client, org_and_token[1])


@pytest.fixture
def other_org_and_token(db) -> tuple[SandboxOrganization, str]:
    """The outsider organisation: nothing of the first one may ever reach it, nor the reverse."""
    return services.sandbox_org_create(name="Bravo Animal Rescue")


@pytest.fixture
def other_api(client, other_org_and_token) -> SandboxApi:
    return SandboxApi(client, other_org_and_token[1])


@pytest.fixture
def no_sleep(monkeypatch) -> list[float]:
    """Record injected sleeps instead of sleeping."""
    slept: list[float] = []
    monkeypatch.setattr(limits, "sleep", slept.append)
    return slept


def counters(org: SandboxOrganization) -> dict[str, int]:
    return SandboxCounters.objects.get(pk=org.pk).as_dict()


def gift_item(transaction_id: str = "ch_1", **overrides: Any) -> dict[str, Any]:
    item = {
        "transactionSource": "Giftline",
        "transactionId": transaction_id,
        "giftDate": "2026-03-01",
        "giftType": "Credit",
        "amount": "25.00",
        "contact": {
            "referenceId": "cus_1",
            "email": "ada@example.org",
            "firstName": "Ada",
            "lastName": "Lovelace",
        },
        "designations": [{"projectCode": "GEN", "amountDesignated": "25.00"}],
    }
    item.update(overrides)
    return item


def contact_item(reference_id: str = "cus_1", **overrides: Any) -> dict[str, Any]:
    item = {
        "referenceSource": "Giftline",
        "referenceId": reference_id,
        "firstName": "Ada",
        "lastName": "Lovelace",
        "email": "ada@example.org",
    }
    item.update(overrides)
    return item
