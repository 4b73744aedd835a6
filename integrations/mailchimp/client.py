"""Mailchimp Marketing API v3: list members, read with the account's API key.

The key ends with the data centre (``…-us19``), which names the host
``https://us19.api.mailchimp.com/3.0``; the key is the Basic-auth password (spec section 2.3).
Mailchimp allows 10 simultaneous connections per account and answers 429 (or a bare 403) when
pushed: one poll runs per connection at a time and its calls are sequential, so one connection
uses one of the ten.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from integrations.common.http import http_session

_DATA_CENTRE = re.compile(r"^[a-z]{2,8}[0-9]{1,4}$")
MEMBER_FIELDS = (
    "members.id,members.email_address,members.status,members.merge_fields,members.tags,"
    "members.last_changed,members.list_id,total_items"
)


class MailchimpError(Exception):
    """The Mailchimp API refused or failed a call; the poll run fails and counts a strike.

    ``retryable`` says whether the same call may succeed later (throttling, server errors); a
    refusal of the request itself (400, 404) will not.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code

    @property
    def retryable(self) -> bool:
        return self.status_code is None or self.status_code in (403, 429) or self.status_code >= 500


def api_base_url(api_key: str) -> str:
    """The data-centre host an API key belongs to; a key without one is refused."""
    _, _, dc = api_key.strip().rpartition("-")
    if not _DATA_CENTRE.match(dc):
        raise MailchimpError("The Mailchimp API key has no data-centre suffix (like '-us19')")
    return f"https://{dc}.api.mailchimp.com/3.0"


class MailchimpClient:
    def __init__(self, *, api_key: str, tenant_label: str = "") -> None:
        self.base_url = api_base_url(api_key)
        self.session = http_session(log_context={"tenant": tenant_label, "provider": "mailchimp"})
        self.session.auth = ("giftline", api_key.strip())

    def members(
        self, list_id: str, *, since: datetime | None, offset: int, count: int
    ) -> list[dict[str, Any]]:
        """One page of an audience's members, oldest change first."""
        params: dict[str, Any] = {
            "count": count,
            "offset": offset,
            "sort_field": "last_changed",
            "sort_dir": "ASC",
            "fields": MEMBER_FIELDS,
        }
        if since is not None:
            params["since_last_changed"] = since.isoformat()
        response = self.session.get(f"{self.base_url}/lists/{list_id}/members", params=params)
        if response.status_code in (403, 429):
            # At high volume Mailchimp throttles with a 403 and no body, so both read as "later".
            raise MailchimpError(
                f"Mailchimp refused or throttled the call (HTTP {response.status_code}); the next run retries",
                status_code=response.status_code,
            )
        if response.status_code != 200:
            raise MailchimpError(f"GET members of list {list_id}: HTTP {response.status_code}")
        try:
            members = response.json().get("members")
        except (ValueError, AttributeError) as exc:
            raise MailchimpError(f"GET members of list {list_id}: not a JSON object") from exc
        if not isinstance(members, list):
            raise MailchimpError(f"GET members of list {list_id}: no members array")
        return members

    # --- two-way writes -------------------------------------------------------------------

    def _write(self, method: str, path: str, body: dict[str, Any]) -> None:
        response = self.session.request(method, f"{self.base_url}{path}", json=body)
        if response.status_code in (200, 204):
            return
        raise MailchimpError(
            f"{method} {path.split('/members/')[0]}/members/…: HTTP {response.status_code}",
            status_code=response.status_code,
        )

    def member_update(self, list_id: str, subscriber_hash: str, body: dict[str, Any]) -> None:
        """PATCH a member: only the fields sent change (merge fields, status)."""
        self._write("PATCH", f"/lists/{list_id}/members/{subscriber_hash}", body)

    def member_tags_update(self, list_id: str, subscriber_hash: str, tags: list[dict[str, str]]) -> None:
        """Add (``active``) or remove (``inactive``) the named tags; other tags are left alone."""
        self._write("POST", f"/lists/{list_id}/members/{subscriber_hash}/tags", {"tags": tags})
