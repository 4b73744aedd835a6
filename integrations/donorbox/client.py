"""Donorbox's polling API: HTTP Basic (org login e-mail, API key), pages of at most 100."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from integrations.common.http import http_session

BASE_URL = "https://donorbox.org"
PER_PAGE = 100  # above 100 Donorbox silently falls back to 50


class DonorboxError(Exception):
    pass


class DonorboxClient:
    def __init__(self, *, email: str, api_key: str, base_url: str = BASE_URL, tenant_label: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.session = http_session(
            log_context={"tenant": tenant_label, "provider": "donorbox"}, guard_urls=base_url != BASE_URL
        )
        self.session.auth = (email, api_key)

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            response = self.session.get(
                f"{self.base_url}{path}", params={**params, "page": page, "per_page": PER_PAGE}
            )
            if response.status_code != 200:
                raise DonorboxError(f"GET {path} page {page}: HTTP {response.status_code}")
            rows = response.json()
            if not isinstance(rows, list):
                raise DonorboxError(f"GET {path}: expected a list")
            yield from rows
            if len(rows) < PER_PAGE:
                return
            page += 1

    def donations_since(self, day: date) -> Iterator[dict[str, Any]]:
        """Donations dated on or after ``day``, oldest first (there is no updated-since filter)."""
        return self._pages("/api/v1/donations", {"date_from": day.isoformat(), "order": "asc"})
