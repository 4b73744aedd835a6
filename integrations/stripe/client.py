"""Stripe's API for the poller, through the official library with a per-connection client.

Each client is a ``stripe.StripeClient`` with the connection's own API key (never the library's
global ``stripe.api_key``, which every tenant would share), and its HTTP goes through our
``http_session`` (timeouts, user agent, redacted logs) by way of ``stripe.RequestsClient``.
Lists come oldest first: Stripe lists newest first, so we page *up* from the checkpoint with
``ending_before``, which the library's auto-pagination walks in ascending order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import stripe

from integrations.common.http import DEFAULT_TIMEOUT, http_session

PAGE_SIZE = 100  # Stripe's maximum


class StripeSourceError(Exception):
    """Stripe refused or failed a read; the message says which and why."""


class StripeSource:
    def __init__(self, *, api_key: str, tenant_label: str = "", max_network_retries: int = 2) -> None:
        session = http_session(log_context={"tenant": tenant_label, "provider": "stripe"})
        self._client = stripe.StripeClient(
            api_key,
            http_client=stripe.RequestsClient(session=session, timeout=DEFAULT_TIMEOUT),
            max_network_retries=max_network_retries,
        )

    def events_after(self, *, cursor_id: str, since: int, types: Iterable[str]) -> Iterator[dict[str, Any]]:
        """Events of ``types`` newer than ``cursor_id`` (or created at/after ``since`` when there
        is no cursor, or the cursor event has aged out of Stripe's 30 days), oldest first."""
        params = {"types": sorted(types)}
        return self._ascending(self._client.v1.events, params, cursor_id=cursor_id, since=since)

    def charges_after(self, *, cursor_id: str, since: int) -> Iterator[dict[str, Any]]:
        """Charges newer than ``cursor_id`` (or created at/after ``since``), oldest first."""
        return self._ascending(self._client.v1.charges, {}, cursor_id=cursor_id, since=since)

    def _ascending(
        self, service: Any, params: dict[str, Any], *, cursor_id: str, since: int
    ) -> Iterator[dict[str, Any]]:
        try:
            if cursor_id:
                try:
                    page = service.list(params={**params, "ending_before": cursor_id, "limit": PAGE_SIZE})
                except stripe.InvalidRequestError as exc:
                    if exc.code != "resource_missing":
                        raise
                else:
                    for obj in page.auto_paging_iter():
                        yield obj.to_dict(for_json=True)
                    return
            # No cursor to page up from: read the window newest first and hand it over reversed.
            # Only the first run (or one after the cursor aged out) does this.
            page = service.list(params={**params, "created": {"gte": since}, "limit": PAGE_SIZE})
            window = [obj.to_dict(for_json=True) for obj in page.auto_paging_iter()]
            yield from reversed(window)
        except stripe.AuthenticationError as exc:
            raise StripeSourceError(f"Stripe rejected the API key: {exc.user_message}") from exc
        except stripe.PermissionError as exc:
            raise StripeSourceError(f"The API key may not read this resource: {exc.user_message}") from exc
        except stripe.RateLimitError as exc:
            raise StripeSourceError(f"Stripe rate limit: {exc.user_message}") from exc
        except stripe.APIConnectionError as exc:
            raise StripeSourceError(f"Cannot reach Stripe: {exc.user_message}") from exc
        except stripe.StripeError as exc:
            raise StripeSourceError(
                f"Stripe error (HTTP {exc.http_status}, {exc.code or 'no code'}): {exc.user_message}"
            ) from exc
