"""GoFundMe Pro poller: transactions and recurring donation plans changed since the checkpoint.

The checkpoint per resource is the newest source-side ``updated_at`` seen plus that record's id;
each run asks for ``updated_at >= checkpoint`` sorted ascending, saving every 100 records so an
interrupted run resumes. The bound is inclusive because several records can share one second:
the ones already stored come again and dedupe on their state key (id + ``updated_at``), so they
cost nothing. Each record is emitted in the webhook envelope, so both paths map identically.

Auth: OAuth2 client credentials. The client id is the connection setting ``client_id``, the
secret the ``oauth_client_secret`` credential; the access token is cached as the
``oauth_access_token`` credential with its ``expires_at`` and renewed shortly before it expires
or when the API answers 401.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from integrations.common.oauth import TokenCache
from integrations.common.parsing import to_datetime
from integrations.common.polling import PollContext
from integrations.gofundme_pro.client import BASE_URL, TOKEN_URL, GoFundMeProClient, TokenRejected
from integrations.registry import connection_settings
from integrations.types import PolledRecord
from tenants.models import Credential

logger = logging.getLogger("giftline.gofundme_pro")

SAVE_EVERY = 100
TOKEN_MARGIN = timedelta(minutes=2)

# (checkpoint resource, API path, event type the mapping handles, default ``with`` embeds)
RESOURCES = (
    ("transactions", "transactions", "transaction.updated", "supporter"),
    ("recurring_donation_plans", "recurring-donation-plans", "recurring_donation_plan.updated", "supporter"),
)


def state_key(resource: str, record_id: str, updated_at: datetime) -> str:
    """Same record in the same state → same key, so a re-read is recorded once."""
    return f"{resource}:{record_id}:{updated_at.isoformat()}"


def poll(connection: Any, ctx: PollContext) -> int:
    """Read every resource's changes since its checkpoint; returns how many records were read."""
    settings = connection_settings(connection)
    client_id = settings.get("client_id")
    organization_id = settings.get("organization_id")
    if not client_id or not organization_id:
        raise ValueError(
            "GoFundMe Pro polling needs client_id and organization_id in the connection settings"
        )
    client = GoFundMeProClient(
        base_url=settings.get("base_url", BASE_URL),
        token_url=settings.get("token_url", TOKEN_URL),
        tenant_label=ctx.mapping.tenant_slug,
    )
    _use_token(connection, ctx, client, client_id=client_id)
    count = 0
    for resource, path, event_type, embed in RESOURCES:
        embed = settings.get(f"{resource}_with", embed)
        try:
            count += _poll_resource(ctx, client, settings, resource, path, event_type, embed, organization_id)
        except TokenRejected:
            # The cached token was revoked early: get a new one and resume from the saved checkpoint.
            _use_token(connection, ctx, client, client_id=client_id, renew=True)
            count += _poll_resource(ctx, client, settings, resource, path, event_type, embed, organization_id)
    return count


def _poll_resource(
    ctx: PollContext,
    client: GoFundMeProClient,
    settings: dict[str, Any],
    resource: str,
    path: str,
    event_type: str,
    embed: str,
    organization_id: str,
) -> int:
    since, since_id = ctx.load_checkpoint(resource)
    if since is None:
        since = timezone.now() - timedelta(days=int(settings.get("initial_days", 30)))
    newest, newest_id = since, since_id
    count = 0
    for row in client.changed_since(path, organization_id=str(organization_id), since=since, embed=embed):
        record_id = str(row.get("id") or "")
        try:
            updated_at = to_datetime(row.get("updated_at"))
        except ValueError:
            updated_at = None
        if not record_id or updated_at is None:
            logger.warning(
                "gofundme_pro.poll_skipped resource=%s id=%r: no id or updated_at", resource, record_id
            )
            continue
        ctx.emit(
            PolledRecord(
                event_type=event_type,
                dedupe_key=state_key(resource, record_id, updated_at),
                payload={"type": event_type, "data": row, "timestamp": row.get("updated_at")},
                modified_at=updated_at,
                record_id=record_id,
            )
        )
        count += 1
        if updated_at >= newest:
            newest, newest_id = updated_at, record_id
        if count % SAVE_EVERY == 0:
            ctx.save_checkpoint(resource, newest, newest_id)
    if count:
        ctx.save_checkpoint(resource, newest, newest_id)
    return count


def _use_token(
    connection: Any, ctx: PollContext, client: GoFundMeProClient, *, client_id: str, renew: bool = False
) -> None:
    """Give the client a usable access token: the cached one, or a new one stored with its expiry."""
    cache = TokenCache(connection, margin=TOKEN_MARGIN)
    cached = None if renew else cache.fresh()
    if cached:
        client.access_token = cached
        return
    client_secret = ctx.secret(Credential.Purpose.OAUTH_CLIENT_SECRET)
    if not client_secret:
        raise ValueError("GoFundMe Pro polling needs the oauth_client_secret credential for this connection")
    cache.store(client.fetch_token(client_id=str(client_id), client_secret=client_secret))
