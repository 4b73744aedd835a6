"""Constant Contact v3 API: contacts and contact lists, read with the connection's OAuth token.

Every call, token refreshes included, first takes a slot from the application-wide throttle.
A 401 refreshes the access token once and retries; a 429 pauses the shared throttle and raises
``Throttled``. Pages follow ``_links.next.href`` as given (the cursor carries the query).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from integrations.common.http import http_session
from integrations.constant_contact.oauth import TokenStore
from integrations.constant_contact.throttle import ApplicationThrottle, Throttled

BASE_URL = "https://api.cc.email"
PAGE_LIMIT = 500  # Constant Contact's maximum


class ConstantContactError(Exception):
    """The API refused or failed a call; the poll run fails and counts a strike."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code

    @property
    def retryable(self) -> bool:
        return self.status_code is None or self.status_code >= 500


class ConstantContactClient:
    def __init__(self, connection: Any, *, throttle: ApplicationThrottle, tenant_label: str = "") -> None:
        self.session = http_session(log_context={"tenant": tenant_label, "provider": "constant_contact"})
        self.throttle = throttle
        self.tokens = TokenStore(connection, session=self.session, throttle=throttle)

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET a ``/v3/...`` path (a next-page link included) and return its JSON object."""
        return self._send("GET", path, params=params)

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT a ``/v3/...`` resource (full replace) and return the JSON object it answers."""
        return self._send("PUT", path, body=body)

    def _send(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: dict | None = None
    ) -> dict[str, Any]:
        if not path.startswith("/v3/"):
            raise ConstantContactError(f"Refusing to follow a link outside the v3 API: {path[:80]!r}")
        token = self.tokens.access_token()
        for attempt in (1, 2):
            self.throttle.acquire()
            response = self.session.request(
                method,
                f"{BASE_URL}{path}",
                params=params,
                json=body,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
            if response.status_code == 401 and attempt == 1:
                token = self.tokens.refresh(stale=token)
                continue
            break
        where = f"{method} {path.split('?')[0]}"
        if response.status_code == 429:
            error_key = _error_key(response)
            self.throttle.rejected(error_key)
            raise Throttled(f"Constant Contact answered 429 ({error_key or 'throttled'})", retry_in=1.0)
        if response.status_code != 200:
            raise ConstantContactError(
                f"{where}: HTTP {response.status_code}", status_code=response.status_code
            )
        try:
            answer = response.json()
        except ValueError as exc:
            raise ConstantContactError(f"{where}: not JSON") from exc
        if not isinstance(answer, dict):
            raise ConstantContactError(f"{where}: not a JSON object")
        return answer

    def _pages(self, path: str, key: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        body = self.get(path, params)
        while True:
            rows = body.get(key)
            if not isinstance(rows, list):
                raise ConstantContactError(f"GET {path}: no {key} array")
            yield from rows
            following = ((body.get("_links") or {}).get("next") or {}).get("href")
            if not following:
                return
            body = self.get(following)

    def contacts(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Contacts matching ``params``, with list memberships, phones and addresses."""
        query = {
            "include": "list_memberships,phone_numbers,street_addresses",
            "limit": PAGE_LIMIT,
            **params,
        }
        return self._pages("/v3/contacts", "contacts", query)

    def contact(self, contact_id: str) -> dict[str, Any]:
        """One contact with everything a full-replace PUT must send back."""
        query = {"include": "custom_fields,list_memberships,phone_numbers,street_addresses,notes"}
        return self.get(f"/v3/contacts/{contact_id}", query)

    def contact_replace(self, contact_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT a contact (full replace: send back what was read, changed)."""
        return self.put(f"/v3/contacts/{contact_id}", body)

    def list_names(self) -> dict[str, str]:
        """Every contact list's id and name (for the "CC: <list>" tags)."""
        return {
            str(row.get("list_id")): str(row.get("name") or "")
            for row in self._pages("/v3/contact_lists", "lists", {"limit": 1000})
            if isinstance(row, dict) and row.get("list_id")
        }


def _error_key(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    return str(body.get("error_key") or "") if isinstance(body, dict) else ""
