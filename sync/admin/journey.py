"""The journey of a donation in the console: a search box over the user's tenants, and one page
per donation telling its story in order (``sync.ops.journey``). Bodies and payloads are shown
with secrets masked always and donor data masked without ``sync.view_donor_pii``."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse

from integrations.models import InboundEvent
from sync.ops.journey import (
    donation_journey,
    donation_search,
    gift_summary,
    journey_anchor,
    journey_anchor_for,
)
from sync.pii import mask_for_display, user_sees_pii
from tenants import selectors as tenant_selectors

JOURNEY_MODELS = ("deadletter", "outbounditem", "inboundevent", "syncrecord")


def journey_urls(model_admin) -> list:
    wrap = model_admin.admin_site.admin_view
    return [
        path("donations/", wrap(lambda r: search_view(model_admin, r)), name="sync_donation_search"),
        path(
            "donations/<uuid:public_id>/",
            wrap(lambda r, public_id: journey_view(model_admin, r, public_id)),
            name="sync_donation_journey",
        ),
        path(
            "donations/for/<str:model>/<int:pk>/",
            wrap(lambda r, model, pk: journey_for_view(model_admin, r, model, pk)),
            name="sync_donation_journey_for",
        ),
    ]


def _tenants(request):
    return tenant_selectors.tenant_list(user=request.user)


def _check(model_admin, request) -> None:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied


def search_view(model_admin, request):
    """Gifts matching the query among the user's tenants, newest first."""
    _check(model_admin, request)
    query = request.GET.get("q", "").strip()
    gifts = donation_search(tenants=_tenants(request), query=query) if query else []
    rows = []
    for gift in gifts:
        summary = gift_summary(gift)
        shown = mask_for_display(
            request.user, {"email": summary["donor_email"], "name": summary["donor_name"]}
        )
        rows.append({"gift": gift, **summary, "donor_email": shown["email"], "donor_name": shown["name"]})
    return model_admin._render(
        request,
        "donations.html",
        "Find a donation",
        query=query,
        rows=rows,
        pii_masked=not user_sees_pii(request.user),
    )


def journey_for_view(model_admin, request, model: str, pk: int):
    """From a dead letter, item, inbound event or sync record to its donation's journey."""
    _check(model_admin, request)
    if model not in JOURNEY_MODELS:
        raise Http404("No journey for this kind of row.")
    anchor = journey_anchor_for(tenants=_tenants(request), model=model, pk=pk)
    if anchor is None:
        raise Http404("No donation for this row.")
    return HttpResponseRedirect(reverse("admin:sync_donation_journey", args=[anchor.public_id]))


def journey_view(model_admin, request, public_id):
    _check(model_admin, request)
    anchor = journey_anchor(tenants=_tenants(request), public_id=public_id)
    if anchor is None:
        raise Http404("No such donation among your tenants.")
    journey = donation_journey(anchor=anchor)
    if journey.gift is not None and anchor != journey.gift:
        return HttpResponseRedirect(reverse("admin:sync_donation_journey", args=[journey.gift.public_id]))
    summary = gift_summary(journey.gift) if journey.gift else {}
    if summary:
        shown = mask_for_display(
            request.user, {"email": summary["donor_email"], "name": summary["donor_name"]}
        )
        summary = {**summary, "donor_email": shown["email"], "donor_name": shown["name"]}
    steps = [{"step": s, "body": _shown(request, s)} for s in journey.steps]
    return model_admin._render(
        request,
        "journey.html",
        "Journey of a donation",
        tenant=journey.tenant,
        journey=journey,
        summary=summary,
        steps=steps,
        pii_masked=not user_sees_pii(request.user),
    )


def _shown(request, step) -> str:
    """The step's stored body or payload as this user may see it, pretty-printed (or '')."""
    value: Any = None
    if step.kind == "received" and step.event is not None:
        value = _event_body(step.event)
    elif step.kind == "queued" and step.item is not None:
        value = step.item.payload
    elif step.kind == "failed" and step.dead_letter is not None:
        value = step.dead_letter.error_details or None
    elif step.kind == "person" and step.audit is not None:
        value = step.audit.details or None
    if value is None:
        return ""
    return json.dumps(
        mask_for_display(request.user, value), indent=2, sort_keys=True, default=str, ensure_ascii=False
    )


def _event_body(event: InboundEvent) -> Any:
    if event.body_purged_at:
        return {"body": "(removed by retention)"}
    raw = bytes(event.body or b"")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {"body": f"({len(raw)} bytes, not JSON)"}
