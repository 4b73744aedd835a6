"""Stripe poller: the backstop for webhooks that never arrived, and a charges backfill.

Two resources, each with its own checkpoint (the source record's ``created`` and its id):

- ``events``: ``/v1/events`` for the handled types. Stripe keeps 30 days of events; each event
  is stored under its own id, so one already received by webhook is a duplicate and costs nothing.
- ``charges``: ``/v1/charges``. A captured charge is stored as a ``payment_intent.succeeded``
  carrying the Charge, which maps to the same gift key (the charge's PaymentIntent) as the
  webhook did. Charges still pending when read are passed by; their ``payment_intent.succeeded``
  event is picked up by the ``events`` resource.

Both read oldest first and save the checkpoint every 100 records, so an interrupted run resumes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from integrations.common.parsing import from_unix_seconds
from integrations.common.polling import PollContext
from integrations.registry import connection_settings
from integrations.stripe.client import StripeSource
from integrations.stripe.mapping import HANDLERS
from integrations.types import PolledRecord
from tenants.models import Credential

SAVE_EVERY = 100
EVENT_HORIZON_DAYS = 30  # Stripe's event retention


def poll(connection: Any, ctx: PollContext) -> int:
    """Read new events, then new charges; returns how many records were emitted."""
    settings = connection_settings(connection)
    api_key = ctx.secret(Credential.Purpose.API_TOKEN)
    if not api_key:
        raise ValueError(
            "Stripe polling needs an API key: credential_set TENANT stripe api_token --scope ..."
        )
    source = StripeSource(
        api_key=api_key,
        tenant_label=ctx.mapping.tenant_slug,
        max_network_retries=int(settings.get("max_network_retries", 2)),
    )
    count = _poll_events(source, ctx)
    return count + _poll_charges(source, ctx, initial_days=int(settings.get("charges_initial_days", 30)))


def _poll_events(source: StripeSource, ctx: PollContext) -> int:
    since, cursor = ctx.load_checkpoint("events")
    start = since or timezone.now() - timedelta(days=EVENT_HORIZON_DAYS)
    events = source.events_after(cursor_id=cursor, since=int(start.timestamp()), types=HANDLERS)
    return _emit_all(ctx, "events", events, _event_record)


def _poll_charges(source: StripeSource, ctx: PollContext, *, initial_days: int) -> int:
    since, cursor = ctx.load_checkpoint("charges")
    start = since or timezone.now() - timedelta(days=initial_days)
    charges = source.charges_after(cursor_id=cursor, since=int(start.timestamp()))
    return _emit_all(ctx, "charges", charges, _charge_record)


def _emit_all(ctx: PollContext, resource: str, objects: Any, to_record: Any) -> int:
    seen = 0
    last: tuple[datetime, str] | None = None
    for obj in objects:
        created = from_unix_seconds(obj["created"])
        record = to_record(obj, created)
        if record is not None:
            ctx.emit(record)
        seen += 1
        last = (created, str(obj["id"]))
        if seen % SAVE_EVERY == 0:
            ctx.save_checkpoint(resource, *last)
    if last is not None:
        ctx.save_checkpoint(resource, *last)
    return seen


def _event_record(event: dict[str, Any], created: datetime) -> PolledRecord:
    return PolledRecord(
        event_type=event["type"],
        dedupe_key=event["id"],
        payload=event,
        modified_at=created,
        record_id=event["id"],
    )


def _charge_record(charge: dict[str, Any], created: datetime) -> PolledRecord | None:
    if charge.get("status") != "succeeded" or charge.get("captured") is False:
        return None  # no money yet; a charge without a PaymentIntent still goes through, to review
    return PolledRecord(
        event_type="payment_intent.succeeded",
        dedupe_key=f"charge:{charge['id']}:succeeded",
        payload={
            "id": f"charge:{charge['id']}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": charge["created"],
            "livemode": charge.get("livemode"),
            "data": {"object": charge},
        },
        modified_at=created,
        record_id=charge["id"],
    )
