"""GoFundMe Pro's REST API 2.0: OAuth2 client credentials, page-numbered lists of at most 100.

The token request carries the client id and secret in the form body, never in the query string
(spec 4.2). Tokens last an hour and come without a refresh token; the poller caches them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from integrations.common.http import http_session
from integrations.common.oauth import AccessToken
from integrations.common.parsing import json_loads

BASE_URL = "https://api.classy.org/2.0"
TOKEN_URL = "https://api.classy.org/oauth2/auth"
PER_PAGE = 100  # the documented maximum


class GoFundMeProError(Exception):
    pass


class TokenRejected(GoFundMeProError):
    """The API answered 401: the cached access token is no longer accepted."""


class GoFundMeProClient:
    def __init__(
        self,
        *,
        base_url: str = BASE_URL,
        token_url: str = TOKEN_URL,
        access_token: str = "",
        tenant_label: str = "",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_url = token_url
        self.session = http_session(
            log_context={"tenant": tenant_label, "provider": "gofundme_pro"},
            guard_urls=base_url != BASE_URL or token_url != TOKEN_URL,
        )
        self.access_token = access_token

    def fetch_token(self, *, client_id: str, client_secret: str) -> AccessToken:
        """Exchange the client credentials for a bearer token (no refresh token is issued)."""
        response = self.session.post(
            self.token_url,
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret},
        )
        if response.status_code != 200:
            raise GoFundMeProError(f"Token request: HTTP {response.status_code}")
        body = _json(response)
        if not isinstance(body, dict) or not body.get("access_token"):
            raise GoFundMeProError("Token response without an access_token")
        lifetime = int(body.get("expires_in") or 3600)
        self.access_token = str(body["access_token"])
        return AccessToken(self.access_token, timezone.now() + timedelta(seconds=lifetime))

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            response = self.session.get(
                f"{self.base_url}{path}",
                params={**params, "page": page, "per_page": PER_PAGE},
                headers={"Authorization": f"Bearer {self.access_token}"},
            )
            if response.status_code == 401:
                raise TokenRejected(f"GET {path}: HTTP 401")
            if response.status_code != 200:
                raise GoFundMeProError(f"GET {path} page {page}: HTTP {response.status_code}")
            body = _json(response)
            rows = body.get("data") if isinstance(body, dict) else None
            if not isinstance(rows, list):
                raise GoFundMeProError(f"GET {path}: expected a page with a data list")
            yield from (row for row in rows if isinstance(row, dict))
            if not rows or int(body.get("current_page") or page) >= int(body.get("last_page") or page):
                return
            page += 1

    def changed_since(
        self, resource: str, *, organization_id: str, since: datetime | None, embed: str = ""
    ) -> Iterator[dict[str, Any]]:
        """Rows of an organisation's list (``transactions``, ``recurring-donation-plans``) whose
        ``updated_at`` is at or after ``since``, oldest change first. The bound is inclusive:
        records sharing the checkpoint's second come again and dedupe on their state key."""
        params: dict[str, Any] = {"sort": "updated_at:asc"}
        if since is not None:
            stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            params["filter"] = f"updated_at>={stamp}"
        if embed:
            params["with"] = embed
        return self._pages(f"/organizations/{organization_id}/{resource}", params)


def _json(response: Any) -> Any:
    """Decode with Decimals, so amounts never pass through float."""
    try:
        return json_loads(response.content)
    except ValueError as exc:
        raise GoFundMeProError(f"HTTP {response.status_code} response body is not JSON") from exc
