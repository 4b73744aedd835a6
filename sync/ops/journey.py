"""The journey of one donation: everything that happened to it, in order, for a person answering
"the donor says they gave: where is the gift?".

A donation is keyed by its gift: the OutboundItem that writes the gift (tenant, transaction
source and transaction id, the ids Virtuous stores and we never regenerate). Its story is the
inbound events whose processing enqueued any of its items (found by the idempotency keys they
recorded), every item those events enqueued (the contact beside the gift, a refund), and for
each item its attempts, confirmation, dead letters and the audit rows of what people did. An
inbound event that produced no item (it stopped in review) is a donation of its own until it is
fixed, keyed by the event.

Every query is scoped by tenant; search runs only over the tenants given (the user's own).
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from django.db.models import Q, QuerySet

from integrations.models import InboundEvent
from sync.models import Attempt, DeadLetter, Operation, OutboundItem, SyncRecord
from tenants.models import AuditEvent, Tenant

GIFT_OPERATIONS = (Operation.GIFT_TRANSACTION, Operation.RECURRING_GIFT_CREATE)
SEARCH_LIMIT = 50
# How far before its item an event may have arrived (it can sit in review for weeks).
EVENT_WINDOW = timedelta(days=90)
_AMOUNT = re.compile(r"^\$?\s*(\d{1,9}(?:[.,]\d{1,2})?)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class Step:
    """One line of the story."""

    at: datetime
    kind: str  # received, mapped, queued, attempt, submitted, confirmed, failed, resolved, person
    title: str
    ok: bool | None = None  # True good news, False a failure, None neutral
    event: InboundEvent | None = None
    item: OutboundItem | None = None
    attempt: Attempt | None = None
    dead_letter: DeadLetter | None = None
    audit: AuditEvent | None = None
    text: str = ""


@dataclass
class Journey:
    tenant: Tenant
    gift: OutboundItem | None
    events: list[InboundEvent] = field(default_factory=list)
    items: list[OutboundItem] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    sync_record: SyncRecord | None = None
    steps: list[Step] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        """Where the donation stands, in words."""
        if self.gift is None:
            event = self.events[0] if self.events else None
            if event is None:
                return "Unknown"
            if event.status == InboundEvent.Status.DISMISSED:
                return "Dismissed by a person"
            if event.status in (InboundEvent.Status.NEEDS_REVIEW, InboundEvent.Status.FAILED):
                return "Stopped before Virtuous: needs review"
            return f"Received: {event.get_status_display()}"
        return {
            OutboundItem.State.CONFIRMED: f"In Virtuous as gift {self.gift.virtuous_id}",
            OutboundItem.State.SUBMITTED: "Sent to Virtuous; waiting for Virtuous to record it",
            OutboundItem.State.PENDING: "Waiting to be sent to Virtuous",
            OutboundItem.State.IN_FLIGHT: "Being sent to Virtuous now",
            OutboundItem.State.NEEDS_REVIEW: "Sent, but Virtuous never showed it: needs review",
            OutboundItem.State.DEAD: "Virtuous refused it: a dead letter to fix",
            OutboundItem.State.DISCARDED: "Discarded by a person",
        }.get(self.gift.state, self.gift.get_state_display())


def gift_summary(item: OutboundItem) -> dict[str, Any]:
    """Amount, date, donor and source of a gift item's payload, for lists and headings."""
    payload = item.payload or {}
    contact = payload.get("contact") or {}
    name = " ".join(p for p in (contact.get("firstName"), contact.get("lastName")) if p)
    return {
        "amount": payload.get("amount"),
        "currency": payload.get("currencyCode") or "USD",
        "date": payload.get("giftDate") or payload.get("startDate") or "",
        "donor_name": name,
        "donor_email": contact.get("email") or "",
        "source": item.external_source,
        "source_id": item.external_id,
    }


def donation_search(
    *, tenants: QuerySet[Tenant], query: str, limit: int = SEARCH_LIMIT
) -> list[OutboundItem]:
    """Gifts of the given tenants matching a donor e-mail or name, an amount, a gift date
    (YYYY-MM-DD), a source donation id, a Virtuous id or a public id; newest first."""
    query = query.strip()
    if not query:
        return []
    gifts = OutboundItem.objects.filter(tenant__in=tenants, operation__in=GIFT_OPERATIONS).select_related(
        "tenant"
    )
    match = Q(external_id=query) | Q(virtuous_id=query)
    with contextlib.suppress(ValueError):
        match |= Q(public_id=UUID(query))
    if "@" in query:
        match |= Q(payload__icontains=json.dumps(query)[1:-1])
    elif _DATE.match(query):
        match |= Q(payload__icontains=f'"giftDate": "{query}"')
    elif amount := _AMOUNT.match(query):
        try:
            value = Decimal(amount.group(1).replace(",", "."))
        except InvalidOperation:
            value = None
        if value is not None:
            forms = {str(value), str(value.quantize(Decimal("0.01"))), str(value.normalize())}
            for form in forms:
                match |= Q(payload__icontains=f'"amount": "{form}"') | Q(
                    payload__icontains=f'"amount": {form}'
                )
    else:
        words = [w for w in query.split() if len(w) >= 2]
        if words:
            by_name = Q()
            for word in words:
                by_name &= Q(payload__icontains=json.dumps(word)[1:-1])
            match |= by_name
    return list(gifts.filter(match).order_by("-created_at")[:limit])


def journey_anchor(*, tenants: QuerySet[Tenant], public_id: UUID) -> OutboundItem | InboundEvent | None:
    """The gift item or inbound event with this public id, among the given tenants only."""
    item = (
        OutboundItem.objects.filter(tenant__in=tenants, public_id=public_id).select_related("tenant").first()
    )
    if item is not None:
        return item
    return (
        InboundEvent.objects.filter(tenant__in=tenants, public_id=public_id).select_related("tenant").first()
    )


def journey_anchor_for(
    *, tenants: QuerySet[Tenant], model: str, pk: int
) -> OutboundItem | InboundEvent | None:
    """The journey's anchor for a row of another page (dead letter, item, event, sync record)."""
    if model == "deadletter":
        letter = DeadLetter.objects.filter(tenant__in=tenants, pk=pk).select_related("item__tenant").first()
        return letter.item if letter else None
    if model == "outbounditem":
        return OutboundItem.objects.filter(tenant__in=tenants, pk=pk).select_related("tenant").first()
    if model == "inboundevent":
        return InboundEvent.objects.filter(tenant__in=tenants, pk=pk).select_related("tenant").first()
    if model == "syncrecord":
        record = SyncRecord.objects.filter(tenant__in=tenants, pk=pk).first()
        if record is None:
            return None
        return (
            OutboundItem.objects.filter(
                tenant=record.tenant_id,
                external_source=record.partner_source,
                external_id=record.partner_id,
            )
            .select_related("tenant")
            .order_by("-operation" if record.resource_type == "contact" else "operation", "created_at")
            .first()
        )
    return None


def donation_journey(*, anchor: OutboundItem | InboundEvent) -> Journey:
    """The whole story of the donation this item or event belongs to, oldest step first."""
    tenant = anchor.tenant
    events: dict[int, InboundEvent] = {}
    items: dict[int, OutboundItem] = {}
    if isinstance(anchor, InboundEvent):
        events[anchor.pk] = anchor
        keys = list((anchor.result or {}).get("keys") or [])
        for item in OutboundItem.objects.filter(tenant=tenant, idempotency_key__in=keys):
            items[item.pk] = item
        gift = next((i for i in items.values() if i.operation in GIFT_OPERATIONS), None)
    elif anchor.operation in GIFT_OPERATIONS:
        gift = anchor
        items[anchor.pk] = anchor
    else:
        # a contact or other write: its donation is the gift its event also enqueued, if any
        items[anchor.pk] = anchor
        for event in _events_for(tenant, [anchor]):
            events[event.pk] = event
            keys = list((event.result or {}).get("keys") or [])
            for item in OutboundItem.objects.filter(tenant=tenant, idempotency_key__in=keys):
                items[item.pk] = item
        gift = next((i for i in items.values() if i.operation in GIFT_OPERATIONS), None)
    if gift is not None:
        for item in OutboundItem.objects.filter(
            tenant=tenant, external_source=gift.external_source, external_id__startswith=gift.external_id
        ):
            # the gift and what hangs off its id (a refund "<id>-refund"), not other gifts
            if item.external_id == gift.external_id or item.external_id.startswith(f"{gift.external_id}-"):
                items[item.pk] = item
        for event in _events_for(tenant, list(items.values())):
            events.setdefault(event.pk, event)
        for event in events.values():
            keys = list((event.result or {}).get("keys") or [])
            for item in OutboundItem.objects.filter(tenant=tenant, idempotency_key__in=keys):
                items.setdefault(item.pk, item)
    letters = list(
        DeadLetter.objects.filter(tenant=tenant, item__in=list(items)).select_related("resolved_by")
    )
    journey = Journey(
        tenant=tenant,
        gift=gift,
        events=sorted(events.values(), key=lambda e: e.received_at),
        items=sorted(items.values(), key=lambda i: i.created_at),
        dead_letters=letters,
    )
    if gift is not None:
        journey.sync_record = SyncRecord.objects.filter(
            tenant=tenant,
            resource_type=SyncRecord.ResourceType.GIFT,
            partner_source=gift.external_source,
            partner_id=gift.external_id,
        ).first()
    journey.steps = _steps(journey)
    return journey


def _events_for(tenant: Tenant, items: list[OutboundItem]) -> list[InboundEvent]:
    """Inbound events whose processing recorded one of these items' keys."""
    if not items:
        return []
    first = min(i.created_at for i in items)
    last = max(i.created_at for i in items)
    by_key = Q()
    for item in items:
        by_key |= Q(result__icontains=json.dumps(item.idempotency_key))
    return list(
        InboundEvent.objects.filter(
            tenant=tenant, received_at__gte=first - EVENT_WINDOW, received_at__lte=last + timedelta(minutes=5)
        )
        .filter(by_key)
        .select_related("connection")
        .order_by("received_at")[:50]
    )


def _steps(journey: Journey) -> list[Step]:
    steps: list[Step] = []
    for event in journey.events:
        how = (
            "Captured by a poll of" if event.capture == InboundEvent.Capture.POLL else "Webhook received from"
        )
        signature = {True: "signature valid", False: "signature INVALID", None: "no signature (polled)"}[
            event.signature_valid
        ]
        steps.append(
            Step(
                event.received_at,
                "received",
                f"{how} {event.provider.replace('_', ' ').title()}: {event.event_type or 'event'}",
                ok=event.signature_valid is not False,
                event=event,
                text=signature,
            )
        )
        if event.processed_at:
            # the items it queued were written inside the processing, just before it finished
            keys = set((event.result or {}).get("keys") or [])
            made = [i.created_at for i in journey.items if i.idempotency_key in keys]
            mapped_at = min([event.processed_at, *made])
            mapped_ok = event.status == InboundEvent.Status.PROCESSED
            enqueued = (event.result or {}).get("enqueued")
            steps.append(
                Step(
                    mapped_at,
                    "mapped",
                    f"Mapped: {event.get_status_display()}"
                    + (f", {enqueued} new item(s) queued" if enqueued is not None else ""),
                    ok=mapped_ok if event.status != InboundEvent.Status.DISMISSED else None,
                    event=event,
                    text=event.status_reason,
                )
            )
    item_ids = [i.pk for i in journey.items]
    for item in journey.items:
        steps.append(
            Step(
                item.created_at,
                "queued",
                f"Queued: {item.get_operation_display()} ({item.get_origin_display()})",
                item=item,
            )
        )
        if item.submitted_at:
            steps.append(
                Step(
                    item.submitted_at,
                    "submitted",
                    f"Accepted by Virtuous: {item.get_operation_display()}",
                    ok=True,
                    item=item,
                )
            )
        if item.confirmed_at:
            steps.append(
                Step(
                    item.confirmed_at,
                    "confirmed",
                    f"Recorded in Virtuous: {item.get_operation_display().lower()}, "
                    f"Virtuous id {item.virtuous_id or '(unknown)'}",
                    ok=True,
                    item=item,
                    text=item.note,
                )
            )
    attempts = (
        Attempt.objects.filter(tenant=journey.tenant, attemptitem__item__in=item_ids)
        .distinct()
        .order_by("created_at", "pk")
    )
    for attempt in attempts:
        good = attempt.status_code is not None and 200 <= attempt.status_code < 300
        steps.append(
            Step(
                attempt.created_at,
                "attempt",
                f"{attempt.method} {attempt.path}: {attempt.status_code or 'no answer'}",
                ok=good,
                attempt=attempt,
                text=attempt.error_message,
            )
        )
    for letter in journey.dead_letters:
        steps.append(
            Step(
                letter.created_at,
                "failed",
                "Dead-lettered: Virtuous refused it",
                ok=False,
                dead_letter=letter,
                text=letter.last_error,
            )
        )
    targets = [str(x.public_id) for x in (*journey.events, *journey.items, *journey.dead_letters)]
    for row in AuditEvent.objects.filter(tenant=journey.tenant, target_id__in=targets).select_related(
        "actor"
    ):
        who = row.actor.get_username() if row.actor else row.via
        steps.append(
            Step(
                row.created_at,
                "person",
                f"{row.action.replace('_', ' ').replace('.', ' ').capitalize()} by {who}",
                audit=row,
            )
        )
    order = {
        k: i
        for i, k in enumerate(
            ("received", "mapped", "queued", "attempt", "failed", "person", "submitted", "confirmed")
        )
    }
    return sorted(steps, key=lambda s: (s.at, order.get(s.kind, 9)))
