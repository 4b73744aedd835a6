"""The one module that calls Virtuous CRM+.

Every method takes a token from the tenant's bucket first (raising ``BudgetExhausted`` without
sending when there is none), sends through ``integrations.common.http``, re-syncs the bucket from the
rate headers of every response, and turns anything but success into a ``VirtuousError`` whose
class tells the caller what to do (spec 4.7). The client writes no rows itself: the caller
records attempts through ``on_call``.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings

from integrations.common.http import UnsafeURLError, http_session
from integrations.common.parsing import json_dumps, json_loads, to_int
from integrations.common.ratelimit import TenantBudget, tenant_budget
from integrations.virtuous import endpoints
from integrations.virtuous.errors import BudgetExhausted, ErrorClass, VirtuousError, classify_status

logger = logging.getLogger("giftline.virtuous")
# Lookups whose 404 means "not there (yet)" (spec 1.1: Find's no match, a record still in the
# holding state); logged at INFO, every other error at WARNING.
LOOKUPS_ANSWERING_404 = frozenset({"contact_find", "contact_by_reference", "gift_by_transaction"})

DEFAULT_RETRY_AFTER = 60.0
# X-RateLimit-Reset is documented as Unix seconds; a smaller number can only be a delay.
_EPOCH_THRESHOLD = 1_000_000_000

# Calls sent and not yet answered, per bucket key, in this process, each numbered in the order it
# was sent. A tenant may have several calls in flight; an answer's X-RateLimit-Remaining counts
# what had arrived before it, so the bucket is re-synced to what remains after the calls sent
# since (otherwise they land as 429s). Calls sent before it and answered later were counted
# already: subtracting them too cost a tenant with overlapping calls one call in every window.
_in_flight: dict[str, set[int]] = {}
_sent: dict[str, int] = {}
_in_flight_lock = threading.Lock()


def _in_flight_start(key: str) -> int:
    """Count a call to ``key`` as sent; returns its number in the order of sending."""
    with _in_flight_lock:
        number = _sent.get(key, 0) + 1
        _sent[key] = number
        _in_flight.setdefault(key, set()).add(number)
        return number


def _in_flight_end(key: str, number: int) -> int:
    """The call ``number`` was answered; returns how many calls sent after it are still in flight."""
    with _in_flight_lock:
        flying = _in_flight.get(key, set())
        flying.discard(number)
        if not flying:
            _in_flight.pop(key, None)
            _sent.pop(key, None)  # nothing left to order against: numbering starts again
        return sum(1 for n in flying if n > number)


TenantAuthPolicy = Callable[[Any, VirtuousError], None]
# What a 401 on a tenant's client does (pause the tenant and alert its people). The sync app
# installs it at start-up (sync.apps); it is the only one, so every tenant client answers alike.
_tenant_auth_policy: TenantAuthPolicy | None = None


def tenant_auth_policy_install(policy: TenantAuthPolicy | None) -> None:
    """Install the one 401 policy ``VirtuousClient.for_tenant`` gives every client it builds."""
    global _tenant_auth_policy
    _tenant_auth_policy = policy


@dataclass(frozen=True)
class CallRecord:
    """One HTTP request sent to Virtuous, handed to ``on_call`` (the caller's attempt log)."""

    method: str
    path: str
    status_code: int | None
    duration_ms: int
    request_id: str | None
    error_class: str | None
    rate_remaining: int | None
    rate_reset: float | None


class VirtuousClient:
    """A Virtuous API client for one tenant."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        budget: TenantBudget | None,
        tenant_label: str,
        keep_reserve: bool = False,
        on_call: Callable[[CallRecord], None] | None = None,
        on_auth_failure: Callable[[VirtuousError], None] | None = None,
        guard_urls: bool = False,
        timeout: tuple[float, float] = (5.0, 30.0),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.budget = budget
        self.tenant_label = tenant_label
        self.keep_reserve = keep_reserve
        self.on_call = on_call
        self.on_auth_failure = on_auth_failure
        self.timeout = timeout
        self._session = http_session(log_context={"tenant": tenant_label}, guard_urls=guard_urls)

    def __repr__(self) -> str:  # never show the token
        return f"<VirtuousClient {self.tenant_label} {self.base_url}>"

    @classmethod
    def for_tenant(
        cls,
        tenant: Any,
        *,
        keep_reserve: bool = False,
        on_call: Callable[[CallRecord], None] | None = None,
    ) -> VirtuousClient:
        """A client with the tenant's token, base URL and budget; a 401 goes to the installed
        tenant policy (pause and alert), whichever job made the client.

        Raises NEEDS_ATTENTION without sending when the tenant has no Virtuous API token.
        """
        from django.core.exceptions import ImproperlyConfigured

        from tenants import selectors
        from tenants.models import Credential
        from tenants.virtuous_hosts import virtuous_base_url_problem

        policy = _tenant_auth_policy
        if policy is None:
            raise ImproperlyConfigured("No 401 policy is installed: the sync app installs it in ready().")

        token = selectors.credential_secret(
            tenant=tenant, platform=Credential.Platform.VIRTUOUS, purpose=Credential.Purpose.API_TOKEN
        )
        if not token:
            raise VirtuousError(ErrorClass.NEEDS_ATTENTION, "No Virtuous API token is set for this tenant.")
        # Checked again where the token leaves: a row written before the allow-list, or by hand.
        problem = virtuous_base_url_problem(tenant.virtuous_base_url)
        if problem:
            raise VirtuousError(ErrorClass.NEEDS_ATTENTION, f"Virtuous base URL refused: {problem}")

        return cls(
            base_url=tenant.virtuous_base_url or settings.VIRTUOUS_BASE_URL,
            token=token,
            budget=tenant_budget(tenant),
            tenant_label=tenant.slug,
            keep_reserve=keep_reserve,
            on_call=on_call,
            on_auth_failure=lambda error: policy(tenant, error),
            guard_urls=bool(tenant.virtuous_base_url),
        )

    # --- organisation -------------------------------------------------------------------

    def organization_current(self) -> dict:
        """The organisation the token belongs to (name, time zone): the credential check."""
        return self._call("organization_current") or {}

    # --- contacts -----------------------------------------------------------------------

    def contact_transaction(self, payload: dict) -> None:
        """Submit one contact to Virtuous's matching pipeline (async; no id comes back)."""
        self._call("contact_transaction", body=payload)

    def contact_batch(self, *, reference_source: str, contacts: list[dict]) -> None:
        """Submit many contacts to the matching pipeline in one request."""
        self._call("contact_batch", body={"referenceSource": reference_source, "contacts": contacts})

    def contact_get_by_reference(self, reference_source: str, reference_id: str) -> dict:
        """The contact carrying our reference; NOT_FOUND while it is still in the holding state."""
        path_params = {"reference_source": reference_source, "reference_id": reference_id}
        return self._call("contact_by_reference", path_params=path_params) or {}

    def contact_find(
        self,
        *,
        email: str | None = None,
        reference_source: str | None = None,
        reference_id: str | None = None,
    ) -> dict | None:
        """Exact-match lookup by reference pair (wins when both are given) or e-mail; None when no match."""
        if reference_source and reference_id:
            params = {"referenceSource": reference_source, "referenceId": reference_id}
        elif email:
            params = {"email": email}
        else:
            raise ValueError("contact_find needs an email or both reference_source and reference_id.")
        try:
            return self._call("contact_find", params=params)
        except VirtuousError as exc:
            if exc.error_class == ErrorClass.NOT_FOUND:
                return None
            raise

    def contact_query(
        self,
        groups: list[dict],
        *,
        sort_by: str | None = None,
        descending: bool = False,
        include_archived: bool = False,
        skip: int = 0,
        take: int = 1000,
        full: bool = True,
    ) -> dict:
        """One page of contacts matching filter groups: ``{"list": [...], "total": n}``."""
        body = {
            "groups": groups,
            "sortBy": sort_by,
            "descending": descending,
            "includeArchived": include_archived,
        }
        return self._query("contact_query_full" if full else "contact_query", body, skip=skip, take=take)

    # --- gifts --------------------------------------------------------------------------

    def gift_transaction(self, payload: dict) -> None:
        """Submit one gift to the matching pipeline (async; no id comes back)."""
        self._call("gift_transaction", body=payload)

    def gift_transactions(
        self, *, transaction_source: str, transactions: list[dict], **batch_fields: Any
    ) -> dict | None:
        """Submit many gifts in one request; ``batch_fields`` are createImport, importName, batch, ..."""
        body = {"transactionSource": transaction_source, "transactions": transactions, **batch_fields}
        return self._call("gift_transactions", body=body)

    def gift_get_by_transaction(self, transaction_source: str, transaction_id: str) -> dict:
        """The gift created from our transaction pair; NOT_FOUND while pending or in needs-update."""
        path_params = {"transaction_source": transaction_source, "transaction_id": transaction_id}
        return self._call("gift_by_transaction", path_params=path_params) or {}

    def gift_get(self, gift_id: int) -> dict:
        """One gift by its Virtuous id."""
        return self._call("gift_get", path_params={"gift_id": gift_id}) or {}

    def gifts_by_contact(self, contact_id: int, *, page_size: int = 100) -> list[dict]:
        """Every gift of one contact, oldest first (``Gift/ByContact``, paged by skip/take)."""
        return self._by_contact("gift_by_contact", contact_id, page_size, {"sortBy": "Id"})

    def _by_contact(
        self, endpoint_key: str, contact_id: int, page_size: int, extra: dict[str, Any]
    ) -> list[dict]:
        items: list[dict] = []
        while True:
            page = self._call(
                endpoint_key,
                path_params={"contact_id": contact_id},
                params={"skip": len(items), "take": page_size, **extra},
            )
            rows = page.get("list") if isinstance(page, dict) else page
            rows = [row for row in rows or [] if isinstance(row, dict)]
            items.extend(rows)
            total = to_int(page.get("total")) if isinstance(page, dict) else None
            if len(rows) < page_size or (total is not None and len(items) >= total):
                return items

    def gift_query(
        self,
        groups: list[dict],
        *,
        sort_by: str | None = None,
        descending: bool = False,
        skip: int = 0,
        take: int = 1000,
        full: bool = True,
    ) -> dict:
        """One page of gifts matching filter groups: ``{"list": [...], "total": n}``."""
        body = {"groups": groups, "sortBy": sort_by, "descending": descending}
        return self._query("gift_query_full" if full else "gift_query", body, skip=skip, take=take)

    def gift_reversing_transaction(self, payload: dict) -> dict | None:
        """Offset a gift (refund, chargeback, duplicate): ``{reversedGiftId, giftDate, notes}``."""
        return self._call("gift_reversing_transaction", body=payload)

    def iter_modified_since(self, resource: str, since: datetime, *, page_size: int = 1000) -> Iterator[dict]:
        """Every contact or gift modified after ``since``, lowest id first.

        Pages with an id cursor ("Id Greater Than the last id seen") instead of a growing skip,
        so records modified while we read cannot shift a page and be skipped.
        """
        if resource not in endpoints.QUERY_ENDPOINT:
            raise ValueError(f"resource must be one of {sorted(endpoints.QUERY_ENDPOINT)}, not {resource!r}.")
        if since.tzinfo is None:
            raise ValueError("since must be an aware datetime.")
        modified_after = {
            "parameter": endpoints.QUERY_LAST_MODIFIED,
            "operator": endpoints.QUERY_IS_AFTER,
            "value": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        body: dict[str, Any] = {"sortBy": endpoints.QUERY_SORT_BY_ID, "descending": False}
        if resource == "contact":
            body["includeArchived"] = True
        last_id: int | None = None
        while True:
            conditions = [modified_after]
            if last_id is not None:
                conditions.append(
                    {
                        "parameter": endpoints.QUERY_ID_PARAMETER[resource],
                        "operator": endpoints.QUERY_GREATER_THAN,
                        "value": str(last_id),
                    }
                )
            page = self._query(
                endpoints.QUERY_ENDPOINT[resource],
                {"groups": [{"conditions": conditions}], **body},
                skip=0,
                take=page_size,
            )
            items = page["list"]
            yield from items
            if len(items) < page_size:
                return
            page_last = max(to_int(item.get("id")) or 0 for item in items)
            if last_id is not None and page_last <= last_id:
                raise VirtuousError(
                    ErrorClass.PERMANENT, f"{resource} query did not advance past id {last_id}."
                )
            last_id = page_last

    # --- recurring gifts ----------------------------------------------------------------

    def recurring_gift_create(self, payload: dict) -> dict:
        """Create a recurring-gift schedule on a known contact."""
        return self._call("recurring_gift_create", body=payload) or {}

    def recurring_gifts_by_contact(self, contact_id: int, *, page_size: int = 100) -> list[dict]:
        """Every recurring-gift schedule of one contact (``RecurringGift/ByContact``)."""
        return self._by_contact("recurring_gift_by_contact", contact_id, page_size, {})

    def recurring_gift_cancel(
        self, recurring_gift_id: int, *, cancel_reason: str = "", category_id: int | None = None
    ) -> None:
        """Cancel a schedule for good (Virtuous sets cancelDateTimeUtc)."""
        body: dict[str, Any] = {"cancelReason": cancel_reason}
        if category_id is not None:
            body["categoryId"] = category_id
        self._call("recurring_gift_cancel", path_params={"recurring_gift_id": recurring_gift_id}, body=body)

    # --- webhook subscriptions ----------------------------------------------------------

    def webhook_create(self, payload: dict) -> dict:
        """Subscribe; the response's integer ``id`` must be stored (there is no list endpoint)."""
        return self._call("webhook_create", body=payload) or {}

    def webhook_get(self, webhook_id: int | str) -> dict:
        """One subscription, e.g. before a full-replacement update."""
        return self._call("webhook_get", path_params={"webhook_id": webhook_id}) or {}

    def webhook_update(self, webhook_id: int | str, payload: dict) -> dict:
        """Full replacement: send the whole subscription (GET it first), or toggles switch off."""
        return self._call("webhook_update", path_params={"webhook_id": webhook_id}, body=payload) or {}

    def webhook_set_active(self, webhook_id: int | str, active: bool) -> None:
        """Events while inactive are dropped by Virtuous, not queued."""
        self._call(
            "webhook_set_active",
            path_params={"webhook_id": webhook_id},
            params={"active": "true" if active else "false"},
        )

    def webhook_delete(self, webhook_id: int | str) -> None:
        """Remove a subscription (offboarding)."""
        self._call("webhook_delete", path_params={"webhook_id": webhook_id})

    # --- the one request path -----------------------------------------------------------

    def _query(self, endpoint_key: str, body: dict, *, skip: int, take: int) -> dict:
        if not 1 <= take <= endpoints.MAX_TAKE:
            raise ValueError(f"take must be between 1 and {endpoints.MAX_TAKE}.")
        if skip < 0:
            raise ValueError("skip cannot be negative.")
        result = self._call(endpoint_key, params={"skip": skip, "take": take}, body=body)
        if not isinstance(result, dict):
            return {"list": [], "total": 0}
        items = [item for item in result.get("list") or [] if isinstance(item, dict)]
        return {"list": items, "total": to_int(result.get("total")) or 0}

    def _call(
        self,
        endpoint_key: str,
        *,
        path_params: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        method, template = endpoints.ENDPOINTS[endpoint_key]
        path = template.format(**{k: quote(str(v), safe="") for k, v in (path_params or {}).items()})
        data = json_dumps(body) if body is not None else None  # a bad payload fails before spending a token

        if self.budget is not None:
            wait = self.budget.try_acquire(1, keep_reserve=self.keep_reserve)
            if wait > 0:
                raise BudgetExhausted(retry_in=wait)
            sent = _in_flight_start(self.budget.key)

        request_id = uuid.uuid4().hex
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/json",
            "X-Request-Id": request_id,
        }
        if data is not None:
            headers["Content-Type"] = "application/json"
        started = time.monotonic()
        try:
            response = self._session.api_request(
                method,
                self.base_url + path,
                params=params,
                data=data.encode() if data is not None else None,
                headers=headers,
                timeout=self.timeout,
            )
        except (requests.RequestException, UnsafeURLError) as exc:
            error = _network_error(exc, request_id)
            self._record(method, template, None, started, request_id, error.error_class, None, None)
            raise error from exc
        finally:
            later = _in_flight_end(self.budget.key, sent) if self.budget is not None else 0

        request_id = response.headers.get("X-Request-Id") or request_id
        remaining = _header_int(response, "X-RateLimit-Remaining")
        reset = _reset_epoch(response.headers.get("X-RateLimit-Reset"))
        if self.budget is not None:
            self.budget.observe(None if remaining is None else remaining - later, reset)
        error_class = classify_status(response.status_code)
        self._record(
            method, template, response.status_code, started, request_id, error_class, remaining, reset
        )
        if error_class is None:
            return _parse_body(response)

        error = _http_error(response, error_class, request_id, hide=self._token)
        # A lookup's 404 is an answer ("no such contact yet"), not a fault: one per donor during an
        # import's contact resolution must not read as a warning in the logs.
        answered = error_class == ErrorClass.NOT_FOUND and endpoint_key in LOOKUPS_ANSWERING_404
        logger.log(
            logging.INFO if answered else logging.WARNING,
            "virtuous.error tenant=%s method=%s path=%s status=%s class=%s request_id=%s",
            self.tenant_label,
            method,
            template,
            response.status_code,
            error_class.value,
            request_id,
        )
        if error_class == ErrorClass.RATE_LIMITED and self.budget is not None:
            margin = settings.VIRTUOUS_RATE_RESET_MARGIN_SECONDS  # Retry-After is whole seconds too
            self.budget.pause_until(time.time() + (error.retry_after or 0.0) + margin)
        if error_class == ErrorClass.NEEDS_ATTENTION and self.on_auth_failure is not None:
            self.on_auth_failure(error)
        raise error

    def _record(
        self,
        method: str,
        template: str,
        status_code: int | None,
        started: float,
        request_id: str,
        error_class: ErrorClass | None,
        remaining: int | None,
        reset: float | None,
    ) -> None:
        if self.on_call is None:
            return
        self.on_call(
            CallRecord(
                method=method,
                path=template,
                status_code=status_code,
                duration_ms=int((time.monotonic() - started) * 1000),
                request_id=request_id,
                error_class=error_class.value if error_class is not None else None,
                rate_remaining=remaining,
                rate_reset=reset,
            )
        )


def _network_error(exc: Exception, request_id: str) -> VirtuousError:
    if isinstance(exc, UnsafeURLError | requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        # The tenant's configured base URL is unusable: a person has to fix it.
        return VirtuousError(
            ErrorClass.NEEDS_ATTENTION, f"Unusable Virtuous URL: {exc}", request_id=request_id
        )
    kind = "timed out" if isinstance(exc, requests.Timeout) else "failed"
    return VirtuousError(ErrorClass.TRANSIENT, f"Request {kind}: {type(exc).__name__}", request_id=request_id)


def _http_error(
    response: requests.Response, error_class: ErrorClass, request_id: str, *, hide: str = ""
) -> VirtuousError:
    message, details = _error_content(response)
    if hide:
        # A server that echoes the request's credentials must not get them stored in our error
        # records, dead letters and alerts.
        message = message.replace(hide, "[redacted]")
        details = json_loads(json_dumps(details).replace(json_dumps(hide)[1:-1], "[redacted]"))
    retry_after = None
    if error_class == ErrorClass.RATE_LIMITED:
        retry_after = _retry_after(response.headers.get("Retry-After"))
    return VirtuousError(
        error_class,
        message,
        status_code=response.status_code,
        details=details,
        retry_after=retry_after,
        request_id=request_id,
    )


def _error_content(response: requests.Response) -> tuple[str, list[dict]]:
    """Message and details from Virtuous's envelope, an ASP.NET-style body, or plain text."""
    fallback = response.reason or f"HTTP {response.status_code}"
    try:
        body = json_loads(response.content) if response.content.strip() else None
    except ValueError:
        return (response.text.strip()[:500] or fallback), []
    if not isinstance(body, dict):
        return fallback, []
    error = body.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        message = str(error.get("message") or fallback)
        details = [d for d in error.get("details") or [] if isinstance(d, dict)]
        return (f"{code}: {message}" if code else message), details
    message = str(body.get("message") or body.get("Message") or error or fallback)
    model_state = body.get("modelState") or body.get("ModelState")
    details = []
    if isinstance(model_state, dict):
        for field, messages in model_state.items():
            for text in messages if isinstance(messages, list) else [messages]:
                details.append({"field": field, "message": str(text)})
    return message, details


def _parse_body(response: requests.Response) -> Any:
    if not response.content.strip():
        return None
    try:
        return json_loads(response.content)
    except ValueError:
        # The write went through (2xx); an odd body must not turn it into a failure and a resend.
        logger.warning("virtuous.non_json_success status=%s", response.status_code)
        return None


def _header_int(response: requests.Response, name: str) -> int | None:
    try:
        return to_int(response.headers.get(name))
    except ValueError:
        return None


def _reset_epoch(value: str | None) -> float | None:
    try:
        number = to_int(value)
    except ValueError:
        return None
    if number is None:
        return None
    return float(number) if number >= _EPOCH_THRESHOLD else time.time() + number


def _retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header (delay or HTTP date); 60 s when absent or unreadable."""
    if not value or not value.strip():
        return DEFAULT_RETRY_AFTER
    try:
        return max(float(value.strip()), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)
