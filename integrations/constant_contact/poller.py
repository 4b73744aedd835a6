"""Constant Contact poller: the primary channel for contacts (no contact webhooks exist).

Two passes, each with its own checkpoint (source-side time + contact id):

- ``cc-contacts``: ``updated_after`` on the contact's ``updated_at``, ``status=all`` so deleted
  contacts show up too;
- ``cc-optouts``: ``optout_after`` on ``email_address.opt_out_date``, because an opt-out changes
  only the e-mail's own ``updated_at`` and the first pass misses it (spec section 3.2).

Each run starts ``overlap_seconds`` before the checkpoint; a contact read twice dedupes on
``contact:<id>:<updated_at>:<email updated_at>``. The API does not document the order of results,
so the checkpoint is saved every 100 contacts only while every contact so far came in ascending
time order (a result in any other order is not ascending a hundred times by chance); otherwise
once, when the pass has read everything. If the shared application budget runs out the run
stops cleanly with what it saved, and the next run continues.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from integrations.common.parsing import to_datetime
from integrations.common.polling import PollContext
from integrations.constant_contact.client import ConstantContactClient, ConstantContactError
from integrations.constant_contact.throttle import ApplicationThrottle, Throttled
from integrations.registry import connection_settings
from integrations.types import PolledRecord

logger = logging.getLogger("giftline.constant_contact")

SAVE_EVERY = 100
# The opt-out pass needs a lower bound on its first run; this one means "every opt-out".
FIRST_OPTOUT = datetime(2000, 1, 1, tzinfo=UTC)
PASSES = (
    ("cc-contacts", "updated_after", ("updated_at",)),
    ("cc-optouts", "optout_after", ("email_address", "opt_out_date")),
)


def poll(connection: Any, ctx: PollContext) -> int:
    """Run both passes; returns how many contacts were read."""
    settings = connection_settings(connection)
    client = ConstantContactClient(
        connection, throttle=ApplicationThrottle(), tenant_label=ctx.mapping.tenant_slug
    )
    overlap = timedelta(seconds=int(settings.get("overlap_seconds", 60)))
    count = 0
    try:
        names = client.list_names()
        for resource, parameter, stamp_path in PASSES:
            count += _pass(client, ctx, names, resource, parameter, stamp_path, overlap)
    except Throttled as exc:
        logger.warning(
            "constant_contact.throttled tenant=%s connection=%s read=%d detail=%s",
            ctx.mapping.tenant_slug,
            connection.public_id,
            count,
            exc,
        )
    return count


def _pass(
    client: ConstantContactClient,
    ctx: PollContext,
    names: dict[str, str],
    resource: str,
    parameter: str,
    stamp_path: tuple[str, ...],
    overlap: timedelta,
) -> int:
    newest, newest_id = ctx.load_checkpoint(resource)
    since = newest - overlap if newest else (FIRST_OPTOUT if resource == "cc-optouts" else None)
    params: dict[str, Any] = {"status": "all"}
    if since is not None:
        params[parameter] = since.isoformat().replace("+00:00", "Z")
    count = 0
    previous: datetime | None = None
    ascending = True
    try:
        for record in client.contacts(params):
            stamp = _stamp(record, stamp_path)
            ctx.emit(_record(record, names, stamp))
            count += 1
            ascending = ascending and (previous is None or stamp >= previous)
            previous = stamp
            contact_id = str(record["contact_id"])
            if newest is None or (stamp, contact_id) > (newest, newest_id):
                newest, newest_id = stamp, contact_id
            if ascending and count % SAVE_EVERY == 0:
                ctx.save_checkpoint(resource, newest, newest_id)
    except Exception:
        # Stopped part-way (budget, API error): keep what is safe to keep, as the periodic save would.
        if ascending and newest is not None:
            ctx.save_checkpoint(resource, newest, newest_id)
        raise
    if newest is not None:
        ctx.save_checkpoint(resource, newest, newest_id)
    return count


def _stamp(record: dict[str, Any], path: tuple[str, ...]) -> datetime:
    value: Any = record
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    try:
        stamp = to_datetime(value)
    except ValueError:
        stamp = None
    if stamp is None or not record.get("contact_id"):
        raise ConstantContactError(
            f"Contact {str(record.get('contact_id'))[:40]!r} has no {'.'.join(path)} time"
        )
    return stamp


def _record(record: dict[str, Any], names: dict[str, str], stamp: datetime) -> PolledRecord:
    email = record.get("email_address") if isinstance(record.get("email_address"), dict) else {}
    lists = [i for i in record.get("list_memberships") or [] if isinstance(i, str)]
    key = f"contact:{record['contact_id']}:{record.get('updated_at')}:{email.get('updated_at')}"
    return PolledRecord(
        event_type="contact",
        dedupe_key=key,
        payload={
            "type": "contact",
            "data": {"contact": record, "list_names": {i: names[i] for i in lists if i in names}},
        },
        modified_at=stamp,
        record_id=str(record["contact_id"]),
    )
