"""The partner drain: two-way writes of Virtuous changes to Mailchimp and Constant Contact.

Items live in the one queue (``OutboundItem``, direction ``inbound``) and use its claim, lease,
backoff and dead-letter machinery; this drain only ever calls the partner's API, within the
partner's own limits: one sequential drain per tenant (Mailchimp allows ten connections per
account), and every Constant Contact call through the application-wide throttle. A throttled
partner releases what was claimed without spending attempts. Virtuous is written only by
``sync.outbound.drain``.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations.constant_contact.client import ConstantContactClient, ConstantContactError
from integrations.constant_contact.throttle import ApplicationThrottle, Throttled
from integrations.mailchimp.client import MailchimpClient, MailchimpError
from integrations.models import Connection
from integrations.virtuous.errors import ErrorClass
from sync.models import Direction, OutboundItem, SyncRecord
from sync.outbound.drain import outbound_claim, outbound_reclaim_expired
from sync.outbound.retry import Decision, RetryPolicy
from sync.outbound.transitions import (
    DrainCounts,
    items_dead_letter,
    items_done,
    items_release,
    items_retry,
)
from sync.two_way import state as two_way
from tenants import selectors
from tenants.models import Credential, Tenant

logger = logging.getLogger("giftline.sync.partner")

CLAIM = 25
_MAILCHIMP_HASH = re.compile(r"^[0-9a-f]{32}$")
_CC_GUID = re.compile(r"^[0-9a-fA-F-]{8,64}$")


class PartnerWriteError(Exception):
    """A partner refused a write; ``retryable`` says whether trying again later can help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass
class PartnerDrainResult(DrainCounts):
    written: int = 0


Writer = Callable[[Connection, str, dict[str, Any]], None]


def _secret(connection: Connection) -> str:
    secret = selectors.credential_secret(
        tenant=connection.tenant,
        platform=connection.provider,
        purpose=Credential.Purpose.API_TOKEN,
        scope=connection.credential_scope,
    )
    if not secret:
        raise PartnerWriteError(f"No {connection.provider} API token for {connection}", retryable=False)
    return secret


def mailchimp_write(connection: Connection, partner_id: str, changes: dict[str, Any]) -> None:
    """PATCH the member's merge fields and status, then add/remove its tags (only ours)."""
    if not _MAILCHIMP_HASH.match(partner_id):
        raise PartnerWriteError(f"Not a Mailchimp subscriber hash: {partner_id[:40]!r}", retryable=False)
    settings = connection.settings or {}
    list_id = str(settings.get("two_way_list_id") or next(iter(settings.get("audiences") or {}), ""))
    if not list_id:
        raise PartnerWriteError("No audience to write to (two_way_list_id or audiences)", retryable=False)
    client = MailchimpClient(api_key=_secret(connection), tenant_label=connection.tenant.slug)
    body: dict[str, Any] = {}
    merge = {
        tag: changes[name] for name, tag in (("firstName", "FNAME"), ("lastName", "LNAME")) if name in changes
    }
    if merge:
        body["merge_fields"] = merge
    if changes.get("optedOut"):
        body["status"] = "unsubscribed"
    tags = [{"name": t, "status": "active"} for t in changes.get("tagsAdd", [])]
    tags += [{"name": t, "status": "inactive"} for t in changes.get("tagsRemove", [])]
    try:
        if body:
            client.member_update(list_id, partner_id, body)
        if tags:
            client.member_tags_update(list_id, partner_id, tags)
    except MailchimpError as exc:
        raise PartnerWriteError(str(exc), retryable=exc.retryable) from exc


CC_EDITABLE = (
    "email_address",
    "first_name",
    "last_name",
    "job_title",
    "company_name",
    "birthday_month",
    "birthday_day",
    "anniversary",
    "custom_fields",
    "phone_numbers",
    "street_addresses",
    "list_memberships",
)


def constant_contact_write(connection: Connection, partner_id: str, changes: dict[str, Any]) -> None:
    """Read the contact, change names, opt-out and list memberships ("CC: <list>" tags), PUT it back."""
    if not _CC_GUID.match(partner_id):
        raise PartnerWriteError(f"Not a Constant Contact id: {partner_id[:40]!r}", retryable=False)
    client = ConstantContactClient(
        connection, throttle=ApplicationThrottle(), tenant_label=connection.tenant.slug
    )
    try:
        current = client.contact(partner_id)
        body = {k: current[k] for k in CC_EDITABLE if k in current}
        body["update_source"] = "Account"
        if "firstName" in changes:
            body["first_name"] = changes["firstName"]
        if "lastName" in changes:
            body["last_name"] = changes["lastName"]
        if changes.get("optedOut"):
            body["email_address"] = {
                "address": (current.get("email_address") or {}).get("address"),
                "permission_to_send": "unsubscribed",
            }
        if changes.get("tagsAdd") or changes.get("tagsRemove"):
            ids = {name: list_id for list_id, name in client.list_names().items()}
            memberships = set(current.get("list_memberships") or [])
            memberships |= {ids[n] for n in changes.get("tagsAdd", []) if n in ids}
            memberships -= {ids[n] for n in changes.get("tagsRemove", []) if n in ids}
            body["list_memberships"] = sorted(memberships)
        client.contact_replace(partner_id, body)
    except ConstantContactError as exc:
        raise PartnerWriteError(str(exc), retryable=exc.retryable) from exc


WRITERS: dict[str, Writer] = {"mailchimp": mailchimp_write, "constant_contact": constant_contact_write}


def partner_drain(*, tenant: Tenant, worker: str | None = None, limit: int = CLAIM) -> PartnerDrainResult:
    """Write this tenant's due two-way changes to their partners (up to ``limit`` items)."""
    worker = worker or f"partner-{uuid.uuid4().hex[:12]}"
    result = PartnerDrainResult()
    outbound_reclaim_expired(tenant=tenant)
    tenant.refresh_from_db(fields=["status", "inbound_mode"])
    if tenant.status != Tenant.Status.ACTIVE:
        result.stopped = "paused"
        return result
    claimed = outbound_claim(tenant=tenant, worker=worker, limit=limit, direction=Direction.INBOUND)
    policy = RetryPolicy.for_tenant(tenant)
    for n, item in enumerate(claimed):
        try:
            _write_one(tenant, item)
        except Throttled as exc:
            result.released += items_release(claimed[n:], worker=worker, retry_in=exc.retry_in)
            result.stopped = "throttled"
            return result
        except PartnerWriteError as exc:
            error_class = ErrorClass.TRANSIENT if exc.retryable else ErrorClass.PERMANENT
            verdict = policy.decide(error_class, item.attempts + 1)
            if verdict.decision == Decision.RETRY:
                items_retry([item], at=verdict.at, message=str(exc))
                result.retried += 1
            else:
                result.dead += items_dead_letter(tenant, [item], message=str(exc), spend_attempt=True)
            continue
        result.written += 1
    result.stopped = "empty" if len(claimed) < limit else "limit"
    return result


def _write_one(tenant: Tenant, item: OutboundItem) -> None:
    payload = item.payload
    connection = (
        Connection.objects.select_related("tenant")
        .filter(tenant=tenant, public_id=payload.get("connection"), is_active=True)
        .first()
    )
    if connection is None or connection.provider not in WRITERS:
        raise PartnerWriteError("The partner connection is gone or inactive", retryable=False)
    if tenant.inbound_mode != Tenant.InboundMode.FULL:
        raise PartnerWriteError(
            f"Inbound mode is {tenant.inbound_mode}: partner writes need 'full'; replay after switching back",
            retryable=False,
        )
    changes = payload.get("changes") or {}
    WRITERS[connection.provider](connection, item.external_id, changes)
    now = timezone.now()
    with transaction.atomic():
        items_done([item], state=OutboundItem.State.CONFIRMED, confirmed_at=now)
        row = (
            SyncRecord.objects.select_for_update()
            .filter(
                tenant=tenant,
                resource_type=SyncRecord.ResourceType.CONTACT,
                partner_source=item.external_source,
                partner_id=item.external_id,
            )
            .first()
        )
        if row is not None:
            before = row.partner_snapshot or payload.get("partnerBefore") or {}
            SyncRecord.objects.filter(pk=row.pk).update(
                partner_snapshot=two_way.snapshot_after_write(before, changes), updated_at=now
            )


def sync_records_cooldown_expire(*, now=None) -> int:
    """Records whose cooldown after a Virtuous change is over are in sync again."""
    return SyncRecord.objects.filter(
        sync_state=SyncRecord.SyncState.VIRTUOUS_PENDING, cooldown_until__lt=now or timezone.now()
    ).update(sync_state=SyncRecord.SyncState.IN_SYNC, cooldown_until=None, updated_at=timezone.now())


def partner_dispatch() -> dict[str, int]:
    """Every minute: end finished cooldowns, then drain each active tenant with due partner writes."""
    cooled = sync_records_cooldown_expire()
    tenants = (
        OutboundItem.objects.filter(
            direction=Direction.INBOUND, state=OutboundItem.State.PENDING, next_attempt_at__lte=timezone.now()
        )
        .order_by()
        .values_list("tenant_id", flat=True)
        .distinct()
    )
    totals = {"cooled": cooled, "tenants": 0, "written": 0, "dead": 0}
    for tenant in Tenant.objects.filter(pk__in=list(tenants), status=Tenant.Status.ACTIVE):
        result = partner_drain(tenant=tenant)
        totals["tenants"] += 1
        totals["written"] += result.written
        totals["dead"] += result.dead
    return totals
