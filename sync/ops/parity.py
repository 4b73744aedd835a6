"""Webhook/poll parity: did both capture paths of a connection see the same changes?

Staff demote polling (primary → backstop → off) with evidence: over a window, every change a
connection's webhooks captured is compared with what its polls captured. A change is named the
same way whichever path saw it: for source platforms, by the queue keys its event produced; for
Virtuous, by record and version (``contact:123:<modifiedDateTimeUtc>``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from integrations.models import Connection, InboundEvent
from integrations.registry import provider_get
from integrations.types import MalformedPayload

COUNTED = [
    InboundEvent.Status.PENDING,
    InboundEvent.Status.PROCESSING,
    InboundEvent.Status.PROCESSED,
    InboundEvent.Status.NEEDS_REVIEW,
    InboundEvent.Status.FAILED,
]
LISTED = 50


def _virtuous_key(event: InboundEvent) -> list[str]:
    try:
        payload = provider_get("virtuous").load(bytes(event.body), event.content_type)
    except MalformedPayload:
        return []
    record = payload["record"]
    version = record.get("modifiedDateTimeUtc") or record.get("createDateTimeUtc") or ""
    return [f"{payload['resource']}:{record.get('id', '')}:{version}"]


def _keys(event: InboundEvent) -> list[str]:
    if event.provider == "virtuous":
        return _virtuous_key(event)
    return [str(k) for k in (event.result or {}).get("keys") or []]


def parity_report(*, connection: Connection, since: dt.datetime, until: dt.datetime) -> dict[str, Any]:
    """Changes captured by webhook only, by poll only, and by both, for one connection in a window.

    Source events not yet processed have produced no keys and are counted as ``unprocessed``.
    """
    seen: dict[str, set[str]] = {InboundEvent.Capture.WEBHOOK: set(), InboundEvent.Capture.POLL: set()}
    events = {InboundEvent.Capture.WEBHOOK: 0, InboundEvent.Capture.POLL: 0}
    unprocessed = 0
    rows = InboundEvent.objects.filter(
        connection=connection, received_at__gte=since, received_at__lt=until, status__in=COUNTED
    ).only("provider", "capture", "body", "content_type", "result", "status")
    for event in rows.iterator(chunk_size=500):
        events[event.capture] += 1
        keys = _keys(event)
        if not keys and event.provider != "virtuous":
            unprocessed += 1
        seen[event.capture].update(keys)
    webhook, poll = seen[InboundEvent.Capture.WEBHOOK], seen[InboundEvent.Capture.POLL]
    both = webhook & poll
    total = len(webhook | poll)
    return {
        "connection": str(connection.public_id),
        "provider": connection.provider,
        "since": since,
        "until": until,
        "webhook_events": events[InboundEvent.Capture.WEBHOOK],
        "poll_events": events[InboundEvent.Capture.POLL],
        "unprocessed": unprocessed,
        "changes": total,
        "both": len(both),
        "webhook_only": len(webhook - poll),
        "poll_only": len(poll - webhook),
        "parity_percent": round(100 * len(both) / total, 1) if total else None,
        "webhook_only_keys": sorted(webhook - poll)[:LISTED],
        "poll_only_keys": sorted(poll - webhook)[:LISTED],
    }
