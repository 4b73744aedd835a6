"""Donorbox poller: re-scan a rolling window of donation dates, since there is no updated-since.

The checkpoint is the newest donation date seen (source-side time); each run starts a few days
before it (``rescan_days``) so refunds and edits of recent donations are caught. Unchanged
donations dedupe on their state key and cost nothing downstream.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from integrations.common.parsing import to_datetime
from integrations.common.polling import PollContext
from integrations.donorbox.client import DonorboxClient
from integrations.donorbox.webhooks import state_key
from integrations.registry import connection_settings
from integrations.types import PolledRecord
from tenants.models import Credential

SAVE_EVERY = 100


def poll(connection: Any, ctx: PollContext) -> int:
    settings = connection_settings(connection)
    api_key = ctx.secret(Credential.Purpose.API_TOKEN)
    if not api_key or not settings.get("account_email"):
        raise ValueError(
            "Donorbox polling needs the account e-mail (connection settings) and an API key credential"
        )
    client = DonorboxClient(
        email=settings["account_email"],
        api_key=api_key,
        base_url=settings.get("base_url", "https://donorbox.org"),
        tenant_label=ctx.mapping.tenant_slug,
    )
    since, _ = ctx.load_checkpoint("donations")
    rescan = timedelta(days=int(settings.get("rescan_days", 7)))
    first_day = ((since - rescan) if since else _initial(settings)).date()
    count = 0
    newest = since
    newest_id = ""
    for donation in client.donations_since(first_day):
        donated_at = to_datetime(donation.get("donation_date"))
        if donated_at is None:
            continue
        payload = {
            "event_type": "donation.updated",
            "event_id": "",
            "donation": donation,
            "created_at": donation.get("donation_date"),
        }
        ctx.emit(
            PolledRecord(
                event_type="donation.updated",
                dedupe_key=state_key(payload),
                payload=payload,
                modified_at=donated_at,
                record_id=str(donation.get("id")),
            )
        )
        count += 1
        if newest is None or donated_at >= newest:
            newest, newest_id = donated_at, str(donation.get("id"))
        if count % SAVE_EVERY == 0:
            ctx.save_checkpoint("donations", newest, newest_id)
    if newest is not None:
        ctx.save_checkpoint("donations", newest, newest_id)
    return count


def _initial(settings: dict[str, Any]):
    from django.utils import timezone

    return timezone.now() - timedelta(days=int(settings.get("initial_days", 30)))
