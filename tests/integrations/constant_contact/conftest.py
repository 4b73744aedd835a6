import json
from datetime import timedelta
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from django.utils import timezone

from tenants.services import credential_set

CLIENT_ID = "6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
WEBHOOK_SECRET = "cc-path-secret-71c0e2b9a4d84f5f"
TOKEN_URL = "https://authz.constantcontact.com/oauth2/default/v1/token"
CONTACTS_URL = "https://api.cc.email/v3/contacts"
LISTS_URL = "https://api.cc.email/v3/contact_lists"


@pytest.fixture(autouse=True)
def fast_throttle(settings):
    """Plenty of shared budget so tests do not sleep; throttle tests set their own."""
    settings.CONSTANT_CONTACT_REQUESTS_PER_SECOND = 100000
    settings.CONSTANT_CONTACT_REQUESTS_PER_DAY = 10_000_000


def store_tokens(tenant, connection, *, refresh="rt-1", access="at-1", expires_in=timedelta(hours=20)):
    scope = connection.credential_scope
    credential_set(
        tenant=tenant,
        platform="constant_contact",
        purpose="oauth_client_secret",
        secret="cs-secret",
        scope=scope,
    )
    credential_set(
        tenant=tenant, platform="constant_contact", purpose="oauth_refresh_token", secret=refresh, scope=scope
    )
    if access:
        credential_set(
            tenant=tenant,
            platform="constant_contact",
            purpose="oauth_access_token",
            secret=access,
            scope=scope,
            expires_at=timezone.now() + expires_in,
        )


@pytest.fixture
def cc_connection(tenant, make_connection):
    c = make_connection(
        tenant,
        "constant_contact",
        secret=WEBHOOK_SECRET,
        capture_mode="polling",
        settings={"client_id": CLIENT_ID, "account_id": "a07e1ikxyomh"},
    )
    store_tokens(tenant, c)
    return c


class FakeTokenEndpoint:
    """Rotating refresh tokens: each one works once; a reused one is invalid_grant."""

    def __init__(self, current="rt-1"):
        self.current = current
        self.spent = []
        self.issued = 0

    def __call__(self, request):
        form = {k: v[0] for k, v in parse_qs(request.body).items()}
        assert form["grant_type"] == "refresh_token"
        assert request.headers["Authorization"].startswith("Basic ")
        self.spent.append(form["refresh_token"])
        if form["refresh_token"] != self.current:
            return 400, {}, json.dumps({"error": "invalid_grant", "error_description": "unknown token"})
        self.issued += 1
        self.current = f"rt-{self.issued + 1}"
        body = {"access_token": f"at-new-{self.issued}", "refresh_token": self.current, "expires_in": 86400}
        return 200, {}, json.dumps(body)


class FakeContacts:
    """The contacts endpoint over an in-memory list: updated_after / optout_after, cursor pages."""

    def __init__(self, contacts, *, page=2):
        self.contacts = contacts
        self.page = page
        self.calls = []
        self.fail_on_call = None
        self.tokens_seen = []

    def __call__(self, request):
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        self.calls.append(query)
        self.tokens_seen.append(request.headers["Authorization"])
        if self.fail_on_call == len(self.calls):
            return 500, {}, "{}"
        if "cursor" in query:
            params, start = json.loads(query["cursor"])
        else:
            params, start = query, 0
        rows = self.select(params)
        body = {"contacts": rows[start : start + self.page]}
        if start + self.page < len(rows):
            cursor = json.dumps([params, start + self.page])
            body["_links"] = {"next": {"href": f"/v3/contacts?cursor={quote(cursor, safe='')}"}}
        return 200, {}, json.dumps(body)

    def select(self, params):
        from integrations.common.parsing import to_datetime

        if "optout_after" in params:
            after = to_datetime(params["optout_after"])
            rows = [
                c
                for c in self.contacts
                if c["email_address"].get("opt_out_date")
                and to_datetime(c["email_address"]["opt_out_date"]) > after
            ]
            return sorted(rows, key=lambda c: c["email_address"]["opt_out_date"])
        rows = self.contacts
        if "updated_after" in params:
            after = to_datetime(params["updated_after"])
            rows = [c for c in rows if to_datetime(c["updated_at"]) > after]
        return sorted(rows, key=lambda c: c["updated_at"])


def lists_body():
    return json.dumps(
        {
            "lists": [
                {"list_id": "07936f78-662a-11eb-af0a-fa163e56c9b0", "name": "Newsletter"},
                {"list_id": "b4c5d6e7-0000-11eb-af0a-fa163e56c9b0", "name": "Volunteers"},
            ]
        }
    )
