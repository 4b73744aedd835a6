"""Mailchimp poller: the members of each configured audience changed since the checkpoint.

One checkpoint per audience (``mc-members:<list id>``): the newest member ``last_changed`` seen
plus that member's id, saved every 100 members. Pages are read oldest change first and keyed on
the timestamp (``since_last_changed`` moves forward page by page; the offset is used only when a
whole page shares one second), so a member edited during the run moves behind the cursor and is
read again instead of shifting an offset past another member. Runs start ``overlap_seconds``
before the checkpoint; members read twice dedupe on ``member:<list>:<id>:<last_changed>``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from integrations.common.parsing import to_datetime
from integrations.common.polling import PollContext
from integrations.mailchimp.client import MailchimpClient, MailchimpError
from integrations.registry import connection_settings
from integrations.types import PolledRecord
from tenants.models import Credential

PAGE_SIZE = 1000  # Mailchimp's maximum
SAVE_EVERY = 100
KEPT_FIELDS = ("id", "email_address", "status", "merge_fields", "tags", "list_id")
_LIST_ID = re.compile(r"^[0-9A-Za-z]{1,20}$")


def poll(connection: Any, ctx: PollContext) -> int:
    """Read every configured audience; returns how many members were read."""
    settings = connection_settings(connection)
    api_key = ctx.secret(Credential.Purpose.API_TOKEN)
    audiences = settings.get("audiences") or {}
    if not api_key or not isinstance(audiences, dict) or not audiences:
        raise ValueError(
            "Mailchimp polling needs 'audiences' ({list id: name}) in the connection settings and an "
            "api_token credential"
        )
    client = MailchimpClient(api_key=api_key, tenant_label=ctx.mapping.tenant_slug)
    overlap = timedelta(seconds=int(settings.get("overlap_seconds", 60)))
    return sum(_poll_audience(client, ctx, str(list_id), overlap) for list_id in audiences)


def _poll_audience(client: MailchimpClient, ctx: PollContext, list_id: str, overlap: timedelta) -> int:
    if not _LIST_ID.match(list_id):
        raise ValueError(f"Not a Mailchimp audience id: {list_id[:40]!r}")
    resource = f"mc-members:{list_id}"
    newest, newest_id = ctx.load_checkpoint(resource)
    cursor = newest - overlap if newest else None
    offset = count = 0
    while True:
        members = client.members(list_id, since=cursor, offset=offset, count=PAGE_SIZE)
        for member in members:
            changed = _changed_at(member)
            ctx.emit(_record(list_id, member, changed))
            count += 1
            if newest is None or (changed, str(member["id"])) > (newest, newest_id):
                newest, newest_id = changed, str(member["id"])
            if count % SAVE_EVERY == 0:
                ctx.save_checkpoint(resource, newest, newest_id)
        if len(members) < PAGE_SIZE:
            break
        # One second back: whether since_last_changed is inclusive is not documented.
        page_end = _changed_at(members[-1]) - timedelta(seconds=1)
        if cursor is None or page_end > cursor:
            cursor, offset = page_end, 0
        else:
            offset += PAGE_SIZE
    if newest is not None:
        ctx.save_checkpoint(resource, newest, newest_id)
    return count


def _changed_at(member: dict[str, Any]) -> datetime:
    try:
        changed = to_datetime(member.get("last_changed"))
    except ValueError:
        changed = None
    if changed is None or not member.get("id"):
        raise MailchimpError(f"Member without id or last_changed: {str(member.get('id'))[:40]!r}")
    return changed


def _record(list_id: str, member: dict[str, Any], changed: datetime) -> PolledRecord:
    data = {key: member.get(key) for key in KEPT_FIELDS}
    data["list_id"] = member.get("list_id") or list_id
    return PolledRecord(
        event_type="member",
        dedupe_key=f"member:{list_id}:{member['id']}:{changed.isoformat()}",
        payload={"type": "member", "fired_at": changed.isoformat(), "data": data},
        modified_at=changed,
        record_id=str(member["id"]),
    )
