"""Direct creates Virtuous does not deduplicate (spec 4.7, 4.11): sent once, looked up after doubt.

``Gift/ReversingTransaction`` and ``RecurringGift`` make a new record every time they are sent
(``integrations.types.IDEMPOTENT``). Before the request the item records, committed and under
the sender's lease, that it was sent (``write_sent_at``) with a baseline of what Virtuous held.
When the answer never comes (timeout, reset, 5xx, the worker died), the marker stays and the next
attempt first looks the record up: found → submitted with the found id; absent → sent again;
undecidable → ``needs_review`` with the evidence, never sent a second time. A definite refusal
(4xx, 429, 401) clears the marker: Virtuous created nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import timezone

from integrations.virtuous.client import VirtuousClient
from integrations.virtuous.errors import BudgetExhausted, ErrorClass, VirtuousError
from sync.models import Operation, OutboundItem
from sync.outbound.faults import fault_point

logger = logging.getLogger("giftline.sync.submit")

REVERSAL_GIFT_TYPE = "ReversingTransaction"


class NeedsReview(Exception):
    """The lookup cannot tell whether the earlier send created the record: a person decides."""

    def __init__(self, message: str, evidence: dict[str, Any]):
        super().__init__(message)
        self.message = message
        self.evidence = evidence


class LeaseLost(Exception):
    """Another worker took the item before the send was recorded: this one must not send."""


@dataclass(frozen=True)
class Lookup:
    found: list[dict]
    evidence: dict[str, Any]


def direct_create_send(
    client: VirtuousClient,
    item: OutboundItem,
    payload: dict[str, Any],
    *,
    worker: str,
    send: Callable[[dict[str, Any]], dict | None],
) -> str:
    """Send a non-idempotent create at most once per record; returns the Virtuous id."""
    item.refresh_from_db(fields=["write_sent_at", "write_evidence"])
    _budget_for_all_calls(client, item)
    if item.write_sent_at is not None:
        lookup = _lookup(client, item, payload, dict(item.write_evidence or {}))
        evidence = {**lookup.evidence, "checked_at": timezone.now().isoformat()}
        if len(lookup.found) == 1:
            found_id = str(lookup.found[0].get("id", ""))
            _evidence_store(item, {**evidence, "outcome": "found", "found_id": found_id})
            logger.info("outbound.direct_create_found item=%s virtuous_id=%s", item.public_id, found_id)
            return found_id
        if lookup.found or evidence.get("undecided"):
            reason = evidence.get("undecided") or (
                f"{len(lookup.found)} matching records in Virtuous: the create may have been applied twice"
            )
            raise NeedsReview(
                f"Outcome of an earlier send unknown: {reason}", {**evidence, "outcome": "review"}
            )
        logger.info("outbound.direct_create_absent item=%s: sending again", item.public_id)
    baseline = _baseline(client, item, payload)
    if not _sent_record(item, worker, baseline):
        raise LeaseLost(f"Item {item.public_id} is no longer held by {worker}")
    fault_point("after_send_recorded")
    try:
        response = send(payload)
    except BudgetExhausted:
        _sent_clear(item)  # refused before the request left: nothing was sent
        raise
    except VirtuousError as exc:
        if exc.error_class != ErrorClass.TRANSIENT:
            _sent_clear(item)  # Virtuous answered with a refusal: nothing was created
        raise
    return str((response or {}).get("id", ""))


def _budget_for_all_calls(client: VirtuousClient, item: OutboundItem) -> None:
    """Start only when the bucket holds every call this send needs (lookup, baseline, create).

    The drain retries a budget-starved send from its first call, so with tokens trickling in one by
    one each new token went to the first read and the create itself never got one.
    """
    budget = getattr(client, "budget", None)
    if budget is None:
        return
    calls = (1 if item.write_sent_at is not None else 0) + 1
    if item.operation == Operation.REVERSING_TRANSACTION:
        calls += 2  # the donor's offsets before the send: Gift/{id} and Gift/ByContact
    wait = budget.seconds_until(calls, keep_reserve=getattr(client, "keep_reserve", False))
    if wait > 0:
        raise BudgetExhausted(retry_in=wait)


def _sent_record(item: OutboundItem, worker: str, baseline: dict[str, Any]) -> bool:
    """The durable marker, committed before the request (autocommit: the drain holds no transaction)."""
    now = timezone.now()
    return bool(
        OutboundItem.objects.filter(
            pk=item.pk, state=OutboundItem.State.IN_FLIGHT, lease_owner=worker
        ).update(write_sent_at=now, write_evidence={**baseline, "sent_at": now.isoformat()}, updated_at=now)
    )


def _sent_clear(item: OutboundItem) -> None:
    OutboundItem.objects.filter(pk=item.pk).update(write_sent_at=None)


def _evidence_store(item: OutboundItem, evidence: dict[str, Any]) -> None:
    OutboundItem.objects.filter(pk=item.pk).update(write_evidence=evidence)


def _baseline(client: VirtuousClient, item: OutboundItem, payload: dict[str, Any]) -> dict[str, Any]:
    """What the lookup compares against: for a reversal, the offsets the donor already has."""
    if item.operation != Operation.REVERSING_TRANSACTION:
        return {}
    original = client.gift_get(int(payload["reversedGiftId"]))
    contact_id = original.get("contactId")
    existing = [g for g in client.gifts_by_contact(int(contact_id)) if _is_offset(g, original, payload)]
    return {
        "contact_id": contact_id,
        "reversed_amount": str(original.get("amount")),
        "offsets_before": sorted(int(g["id"]) for g in existing),
    }


def _lookup(
    client: VirtuousClient, item: OutboundItem, payload: dict[str, Any], sent: dict[str, Any]
) -> Lookup:
    if item.operation == Operation.RECURRING_GIFT_CREATE:
        return _schedule_lookup(client, payload, sent)
    if item.operation == Operation.REVERSING_TRANSACTION:
        return _reversal_lookup(client, payload, sent)
    raise ValueError(f"{item.operation} is not a direct create")


def _schedule_lookup(client: VirtuousClient, payload: dict[str, Any], sent: dict[str, Any]) -> Lookup:
    """A schedule is found by its transaction pair among the contact's schedules."""
    source, transaction_id = payload.get("transactionSource"), payload.get("transactionId")
    if not (source and transaction_id and payload.get("contactId")):
        return Lookup([], {**sent, "undecided": "the schedule has no transaction pair or contact to look up"})
    schedules = client.recurring_gifts_by_contact(int(payload["contactId"]))
    found = [
        s
        for s in schedules
        if str(s.get("transactionSource") or "") == str(source)
        and str(s.get("transactionId") or "") == str(transaction_id)
    ]
    return Lookup(
        found,
        {
            **sent,
            "lookup": f"RecurringGift/ByContact/{payload['contactId']}",
            "schedules_seen": len(schedules),
            "matching_ids": [s.get("id") for s in found],
        },
    )


def _reversal_lookup(client: VirtuousClient, payload: dict[str, Any], sent: dict[str, Any]) -> Lookup:
    """Virtuous's gift shape names no reversed gift, so an offset is recognised on the donor's
    gifts: type ReversingTransaction, the negated amount, our gift date, and not there before."""
    if "offsets_before" not in sent or not sent.get("contact_id"):
        return Lookup([], {**sent, "undecided": "no record of the donor's offsets before the send"})
    original = {"amount": sent["reversed_amount"]}
    before = set(sent["offsets_before"])
    gifts = client.gifts_by_contact(int(sent["contact_id"]))
    found = [g for g in gifts if _is_offset(g, original, payload) and int(g["id"]) not in before]
    return Lookup(
        found,
        {
            **sent,
            "lookup": f"Gift/ByContact/{sent['contact_id']}",
            "gifts_seen": len(gifts),
            "matching_ids": [g.get("id") for g in found],
        },
    )


def _is_offset(gift: dict, original: dict, payload: dict[str, Any]) -> bool:
    try:
        negated = -Decimal(str(original.get("amount")))
        amount = Decimal(str(gift.get("amount")))
    except (InvalidOperation, TypeError):
        return False
    return (
        gift.get("giftType") == REVERSAL_GIFT_TYPE
        and amount == negated
        and str(gift.get("giftDate") or "")[:10] == str(payload.get("giftDate") or "")[:10]
    )
