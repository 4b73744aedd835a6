"""The sandbox's HTTP surface: Virtuous's paths, auth, rate-limit headers and fault injection.

Every request goes through :func:`_serve`: bearer token → organisation (401 plain text
otherwise), one hit on the rate window (429 + Retry-After when over, or during a 429 storm),
injected latency/errors, the endpoint itself, one counters UPDATE, then, for a write, an injected
error or timeout after the work (the answer is replaced by a 5xx, or held back: the caller that
gives up has still written).
Handlers are thin: they call ``services``/``queries`` and shape the answer.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from integrations.sandbox import limits, payloads, queries, services
from integrations.sandbox.models import SandboxOrganization, SandboxTransaction
from integrations.sandbox.payloads import ApiError, detail, validation_error

DENIED = "Authorization has been denied for this request."


@dataclass
class Result:
    data: Any = None  # None answers 200 with an empty body, like the Transaction endpoints
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Handler:
    fn: Callable[..., Result]
    write: bool = False


def route(**methods: Handler) -> Callable[..., HttpResponse]:
    """One URL's view: ``route(GET=Handler(...), PUT=Handler(..., write=True))``."""

    @csrf_exempt
    def view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        return _serve(request, methods, kwargs)

    return view


def _serve(request: HttpRequest, methods: dict[str, Handler], kwargs: dict[str, Any]) -> HttpResponse:
    auth = request.headers.get("Authorization", "")
    organization = services.sandbox_org_authenticate(token=auth[7:] if auth.startswith("Bearer ") else "")
    if organization is None:
        return HttpResponse(DENIED, status=401, content_type="text/plain; charset=utf-8")
    tally: Counter[str] = Counter(requests_total=1)
    rate = limits.rate_hit(organization=organization)
    response = _answer(request, organization, methods, kwargs, rate, tally)
    limits.counters_add(organization_id=organization.pk, **tally)
    handler = methods.get(request.method or "")
    if handler is not None and handler.write and response.status_code < 400:
        response = _after_write_faults(organization, response)
    for name, value in rate.headers().items():
        response[name] = value
    return response


def _after_write_faults(organization: SandboxOrganization, response: HttpResponse) -> HttpResponse:
    """A write that was done and committed, answered with a 5xx or only after a timeout."""
    if limits.roll(organization.error_after_rate):
        status = limits.pick_error_status(organization=organization)
        limits.counters_add(organization_id=organization.pk, faults_injected=1)
        message = "Injected sandbox fault after the work was done."
        return JsonResponse(ApiError(status, "SERVER_ERROR", message).as_json(), status=status)
    if limits.roll(organization.timeout_rate):
        limits.sleep(organization.timeout_seconds)
    return response


def _answer(
    request: HttpRequest,
    organization: SandboxOrganization,
    methods: dict[str, Handler],
    kwargs: dict[str, Any],
    rate: limits.RateState,
    tally: Counter[str],
) -> HttpResponse:
    if organization.added_latency_ms:
        limits.sleep(organization.added_latency_ms / 1000)
    if not rate.allowed or limits.storm_active(organization=organization):
        tally["rate_limited_responses"] += 1
        retry_after = rate.retry_after(time.time()) if not rate.allowed else organization.storm_retry_after
        response = JsonResponse(
            ApiError(
                429, "RATE_LIMITED", f"Rate limit exceeded. Retry after {retry_after} seconds."
            ).as_json(),
            status=429,
        )
        response["Retry-After"] = str(retry_after)
        return response
    if limits.roll(organization.error_rate):
        tally["faults_injected"] += 1
        status = limits.pick_error_status(organization=organization)
        return JsonResponse(
            ApiError(status, "SERVER_ERROR", "Injected sandbox fault.").as_json(), status=status
        )
    handler = methods.get(request.method or "")
    if handler is None:
        response = JsonResponse(
            ApiError(405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed here.").as_json(),
            status=405,
        )
        response["Allow"] = ", ".join(methods)
        return response
    try:
        result = handler.fn(request, organization, _json_body(request), **kwargs)
    except ApiError as exc:
        return JsonResponse(exc.as_json(), status=exc.status)
    if handler.write:
        tally["writes_total"] += 1
    tally.update(result.counts)
    if result.data is None:
        return HttpResponse(status=200)
    return JsonResponse(result.data, safe=False)


def _json_body(request: HttpRequest) -> Any:
    if request.method not in ("POST", "PUT", "PATCH") or not request.body:
        return None
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise validation_error([detail("body", "INVALID_JSON", "The body is not valid JSON.")]) from exc


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise validation_error([detail("body", "INVALID", "The body must be a JSON object.")])
    return body


def _validate_batch(items: Any, name: str, validate: Callable[..., services.Submission]) -> list:
    """Validate every item first; any bad item rejects the whole call (nothing is stored)."""
    if not isinstance(items, list) or not items:
        raise validation_error([detail(name, "REQUIRED", f"{name} must be a non-empty list.")])
    subs, errors = [], []
    for i, item in enumerate(items):
        try:
            subs.append(validate(item, prefix=f"{name}[{i}]."))
        except ApiError as exc:
            errors.extend({**d, "index": i} for d in exc.details)
    if errors:
        bad = sorted({d["index"] for d in errors})
        raise validation_error(errors, f"{len(bad)} of {len(items)} items are invalid; nothing was stored.")
    return subs


def _submit(organization: SandboxOrganization, kind: str, subs: list[services.Submission]) -> Result:
    received, duplicates = services.sandbox_transactions_submit(
        organization=organization, kind=kind, submissions=subs
    )
    return Result(counts={"transactions_received": received, "duplicate_submissions": duplicates})


# --- handlers -----------------------------------------------------------------------------


def organization_current(request, organization, body) -> Result:
    return Result(
        {
            "organizationId": organization.pk,
            "organizationName": organization.name,
            "organizationUserId": organization.pk,
            "organizationTimeZone": organization.time_zone,
            "userName": "sandbox-api-key",
            "isEnabled": True,
        }
    )


def health(request, organization, body) -> Result:
    return Result({"status": "Healthy"})


def contact_transaction(request, organization, body) -> Result:
    sub = services.contact_transaction_validate(_object(body))
    return _submit(organization, SandboxTransaction.Kind.CONTACT, [sub])


def contact_batch(request, organization, body) -> Result:
    body = _object(body)
    source = payloads.text(body.get("referenceSource"))
    subs = _validate_batch(
        body.get("contacts"),
        "contacts",
        lambda item, prefix: services.contact_transaction_validate(
            item, reference_source=source, prefix=prefix
        ),
    )
    return _submit(organization, SandboxTransaction.Kind.CONTACT, subs)


def gift_transaction(request, organization, body) -> Result:
    sub = services.gift_transaction_validate(_object(body))
    return _submit(organization, SandboxTransaction.Kind.GIFT, [sub])


def gift_transactions(request, organization, body) -> Result:
    body = _object(body)
    defaults = {
        "transactionSource": body.get("transactionSource"),
        "batch": body.get("batch"),
        "giftDate": body.get("defaultGiftDate"),
        "giftType": body.get("defaultGiftType"),
    }
    subs = _validate_batch(
        body.get("transactions"),
        "transactions",
        lambda item, prefix: services.gift_transaction_validate(item, defaults=defaults, prefix=prefix),
    )
    return _submit(organization, SandboxTransaction.Kind.GIFT, subs)


def reversing_transaction(request, organization, body) -> Result:
    reversal = services.sandbox_reversal_create(organization=organization, body=body)
    return Result(payloads.gift_json(reversal))


def contact_create(request, organization, body) -> Result:
    contact = services.sandbox_contact_create(organization=organization, body=_object(body))
    return Result(services.contact_resource(contact))


def contact_detail(request, organization, body, contact_id: int) -> Result:
    contact = services.contact_get(organization=organization, contact_id=contact_id)
    return Result(services.contact_resource(contact))


def contact_update(request, organization, body, contact_id: int) -> Result:
    contact = services.sandbox_contact_edit(
        organization=organization, contact_id=contact_id, changes=_object(body)
    )
    return Result(services.contact_resource(contact))


def contact_by_reference(request, organization, body, reference_source: str, reference_id: str) -> Result:
    contact = services.contact_by_reference(
        organization=organization, source=reference_source, reference_id=reference_id
    )
    if contact is None:
        raise payloads.not_found("Contact")
    return Result(services.contact_resource(contact))


def contact_find(request, organization, body) -> Result:
    """Exact match; the reference pair wins over the e-mail when both are sent."""
    source, ref = request.GET.get("referenceSource", ""), request.GET.get("referenceId", "")
    email = request.GET.get("email", "")
    if source and ref:
        contact = services.contact_by_reference(organization=organization, source=source, reference_id=ref)
    elif email:
        contact = services.contact_by_email(organization=organization, email=email)
    else:
        raise validation_error(
            [detail("email", "REQUIRED", "Send email, or referenceSource and referenceId.")]
        )
    if contact is None:
        raise payloads.not_found("Contact")
    return Result(services.contact_resource(contact))


def _page(request, qs, shape: Callable[[Any], dict]) -> Result:
    skip, take = queries.page_params(request.GET)
    total = qs.count()
    return Result({"list": [shape(row) for row in qs[skip : skip + take]], "total": total})


def contact_query(request, organization, body, full: bool = False) -> Result:
    qs = queries.contact_query(organization=organization, body=body)
    if full:
        return _page(request, qs.prefetch_related("references"), services.contact_resource)
    return _page(request, qs, lambda c: payloads.contact_json(c, [], full=False))


def gift_query(request, organization, body, full: bool = False) -> Result:
    qs = queries.gift_query(organization=organization, body=body)
    return _page(request, qs, lambda g: payloads.gift_json(g, full=full))


def gift_detail(request, organization, body, gift_id: int) -> Result:
    return Result(payloads.gift_json(services.gift_get(organization=organization, pk=gift_id)))


def gift_by_transaction(request, organization, body, transaction_source: str, transaction_id: str) -> Result:
    gift = services.gift_get(
        organization=organization, transaction_source=transaction_source, transaction_id=transaction_id
    )
    return Result(payloads.gift_json(gift))


def recurring_create(request, organization, body) -> Result:
    recurring = services.sandbox_recurring_create(organization=organization, body=body)
    return Result(payloads.recurring_json(recurring))


def gifts_by_contact(request, organization, body, contact_id: int) -> Result:
    """``GET Gift/ByContact/{contactId}``: paged (``skip``, ``take`` default 10), newest first by
    default for ``sortBy=CreatedDateTime``, the full gift shape."""
    qs = queries.gifts_by_contact(organization=organization, contact_id=contact_id, params=request.GET)
    return _page(request, qs, payloads.gift_json)


def recurring_by_contact(request, organization, body, contact_id: int) -> Result:
    """``GET RecurringGift/ByContact/{contactId}``: the contact's schedules, paged like the gifts."""
    qs = queries.recurring_by_contact(organization=organization, contact_id=contact_id)
    return _page(request, qs, payloads.recurring_json)


def recurring_detail(request, organization, body, recurring_id: int) -> Result:
    recurring = services.recurring_get(organization=organization, recurring_id=recurring_id)
    return Result(payloads.recurring_json(recurring))


def recurring_cancel(request, organization, body, recurring_id: int) -> Result:
    reason = payloads.text(body.get("cancelReason")) if isinstance(body, dict) else ""
    recurring = services.sandbox_recurring_cancel(
        organization=organization, recurring_id=recurring_id, reason=reason
    )
    return Result(payloads.recurring_json(recurring))


def webhook_create(request, organization, body) -> Result:
    return Result(
        payloads.webhook_json(services.sandbox_webhook_create(organization=organization, body=body))
    )


def webhook_detail(request, organization, body, webhook_id: int) -> Result:
    return Result(
        payloads.webhook_json(services.sandbox_webhook_get(organization=organization, webhook_id=webhook_id))
    )


def webhook_update(request, organization, body, webhook_id: int) -> Result:
    hook = services.sandbox_webhook_update(organization=organization, webhook_id=webhook_id, body=body)
    return Result(payloads.webhook_json(hook))


def webhook_delete(request, organization, body, webhook_id: int) -> Result:
    services.sandbox_webhook_delete(organization=organization, webhook_id=webhook_id)
    return Result()


def webhook_active(request, organization, body, webhook_id: int) -> Result:
    flag = request.GET.get("active", "").lower()
    if flag not in ("true", "false"):
        raise validation_error([detail("active", "INVALID", "active must be true or false.")])
    hook = services.sandbox_webhook_set_active(
        organization=organization, webhook_id=webhook_id, active=flag == "true"
    )
    return Result(payloads.webhook_json(hook))
