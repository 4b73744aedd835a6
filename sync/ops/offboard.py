"""Offboarding a customer: stop, unsubscribe, retire the secrets, then remove or anonymise data."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from integrations.models import Connection, InboundEvent
from integrations.virtuous.client import VirtuousClient
from integrations.virtuous.errors import ErrorClass, VirtuousError
from sync.clients import virtuous_client
from sync.models import (
    Alert,
    Attempt,
    DeadLetter,
    OutboundItem,
    SyncCheckpoint,
    SyncRecord,
    TenantQueue,
    VirtuousContactMirror,
    VirtuousGiftMirror,
    VirtuousRecurringGiftMirror,
)
from tenants.models import Credential, Tenant
from tenants.services import Actor, audit_record, tenant_pause

DATA_DELETE = "delete"
DATA_ANONYMISE = "anonymise"
ANONYMISED = "[removed at offboarding]"


class OffboardError(RuntimeError):
    """A step failed; the steps before it stay done and the command can be run again."""


@dataclass
class OffboardResult:
    webhook: str = ""
    credentials_retired: int = 0
    connections_stopped: int = 0
    rows: dict[str, int] = field(default_factory=dict)


def tenant_offboard(
    *, tenant: Tenant, actor: Actor, data: str = DATA_DELETE, client: VirtuousClient | None = None
) -> OffboardResult:
    """Offboard in the order the security brief gives; safe to run again after a failure.

    1. pause the tenant and deactivate its connections (nothing is sent or polled any more);
    2. delete the Virtuous webhook subscription (a 404 means it is already gone);
    3. retire every credential and wipe its ciphertext;
    4. delete the tenant's sync data, or keep the rows with donor data blanked (``anonymise``).
    The tenant row and its audit log stay, so the history of what was done remains.
    """
    if data not in (DATA_DELETE, DATA_ANONYMISE):
        raise ValueError(f"data must be {DATA_DELETE!r} or {DATA_ANONYMISE!r}")
    result = OffboardResult()
    tenant_pause(tenant=tenant, reason="Offboarded", actor=actor)
    result.connections_stopped = Connection.objects.filter(tenant=tenant, is_active=True).update(
        is_active=False
    )
    result.webhook = _unsubscribe(tenant, actor, client)
    with transaction.atomic():
        result.credentials_retired = (
            Credential.objects.filter(tenant=tenant)
            .exclude(state=Credential.State.RETIRED, ciphertext="")
            .update(state=Credential.State.RETIRED, retired_at=timezone.now(), ciphertext="")
        )
        result.rows = _remove_data(tenant, data)
        audit_record(
            actor=actor,
            action="tenant.offboarded",
            tenant=tenant,
            target=tenant,
            details={
                "data": data,
                "webhook": result.webhook,
                "credentials_retired": result.credentials_retired,
                "connections_stopped": result.connections_stopped,
                "rows": result.rows,
            },
        )
    return result


def _unsubscribe(tenant: Tenant, actor: Actor, client: VirtuousClient | None) -> str:
    if not tenant.virtuous_webhook_id:
        return "none"
    try:
        (client or virtuous_client(tenant)).webhook_delete(tenant.virtuous_webhook_id)
        outcome = "deleted"
    except VirtuousError as exc:
        if exc.error_class != ErrorClass.NOT_FOUND:
            raise OffboardError(
                f"Could not delete the Virtuous webhook subscription: {exc}. The tenant is paused; "
                "fix the cause (or delete the subscription in Virtuous) and offboard again."
            ) from exc
        outcome = "already gone"
    Tenant.objects.filter(pk=tenant.pk).update(virtuous_webhook_id="")
    tenant.virtuous_webhook_id = ""
    audit_record(actor=actor, action="virtuous.webhook_deleted", tenant=tenant, target=tenant)
    return outcome


MIRRORS = (
    ("contact_mirror", VirtuousContactMirror),
    ("gift_mirror", VirtuousGiftMirror),
    ("recurring_gift_mirror", VirtuousRecurringGiftMirror),
)


def _remove_data(tenant: Tenant, data: str) -> dict[str, int]:
    if data == DATA_ANONYMISE:
        return {
            "outbound_items": OutboundItem.objects.filter(tenant=tenant).update(payload={}, last_error=""),
            "dead_letters": DeadLetter.objects.filter(tenant=tenant).update(
                original_payload={}, error_details=[], last_error=ANONYMISED
            ),
            "inbound_events": InboundEvent.objects.filter(tenant=tenant).update(
                body=b"", headers={}, result={}
            ),
            "alerts": Alert.objects.filter(tenant=tenant).update(body=ANONYMISED),
            "partner_snapshots": SyncRecord.objects.filter(tenant=tenant).update(partner_snapshot={}),
            # The reporting mirror is a copy of Virtuous's donor data: anonymising removes it.
            **{label: model.objects.filter(tenant=tenant).delete()[0] for label, model in MIRRORS},
        }
    counts = {}
    for label, model in (
        ("dead_letters", DeadLetter),
        ("attempts", Attempt),
        ("outbound_items", OutboundItem),
        ("sync_records", SyncRecord),
        ("checkpoints", SyncCheckpoint),
        ("inbound_events", InboundEvent),
        ("alerts", Alert),
        ("queue", TenantQueue),
        *MIRRORS,
    ):
        counts[label], _ = model.objects.filter(tenant=tenant).delete()
    return counts
