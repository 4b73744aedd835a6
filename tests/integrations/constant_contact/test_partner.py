"""Constant Contact's partner side: the two-way writer (moved here with it from sync)."""

import json
from unittest import mock as umock

import responses

from integrations.constant_contact.partner import constant_contact_write
from integrations.services import connection_create

EMAIL = "ada@example.org"


def test_constant_contact_write_reads_then_replaces_with_lists_by_name(tenant):
    connection = connection_create(tenant=tenant, provider="constant_contact", capture_mode="polling")
    guid = "1c5e2a7e-0000-4000-8000-000000000001"
    current = {
        "contact_id": guid,
        "email_address": {"address": EMAIL, "permission_to_send": "implicit"},
        "first_name": "Ada",
        "last_name": "Lovelace",
        "list_memberships": ["list-1"],
        "phone_numbers": [{"phone_number": "555"}],
    }
    with (
        umock.patch("integrations.constant_contact.oauth.TokenStore.access_token", return_value="tok"),
        umock.patch("integrations.constant_contact.throttle.ApplicationThrottle.acquire"),
        responses.RequestsMock() as http,
    ):
        http.add(responses.GET, f"https://api.cc.email/v3/contacts/{guid}", json=current)
        http.add(
            responses.GET,
            "https://api.cc.email/v3/contact_lists",
            json={
                "lists": [
                    {"list_id": "list-1", "name": "Donors"},
                    {"list_id": "list-2", "name": "Volunteers"},
                ]
            },
        )
        http.add(responses.PUT, f"https://api.cc.email/v3/contacts/{guid}", json=current)
        constant_contact_write(
            connection, guid, {"lastName": "Byron", "tagsAdd": ["Volunteers"], "tagsRemove": ["Donors"]}
        )
        body = json.loads(http.calls[2].request.body)
    assert body["last_name"] == "Byron" and body["first_name"] == "Ada"
    assert body["list_memberships"] == ["list-2"] and body["phone_numbers"] == [{"phone_number": "555"}]
    assert body["update_source"] == "Account"
