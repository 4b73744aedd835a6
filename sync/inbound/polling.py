"""Running a connection's poller: checkpoints, circuit breaker, and one run at a time.

The poller (integrations.<provider>.poller) reads changes since its checkpoint and emits them;
each one is stored as an InboundEvent (dedupe by record and version), so a change seen by both a
webhook and a poll becomes one queue item after mapping. Checkpoints are saved as the poller
goes, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from config.metrics import poll_failed
from integrations.common.mapping import MappingContext
from integrations.common.polling import PollContext
from integrations.common.secrets import connection_secret
from integrations.models import Connection
from integrations.registry import provider_get
from integrations.services import inbound_event_record_polled
from integrations.types import PolledRecord
from sync.models import SyncCheckpoint
from sync.ops import alerts

logger = logging.getLogger("giftline.sync.polling")


class PollSkipped(Exception):
    """Another worker is polling this connection, or it is not due."""


def checkpoint_load(*, connection: Connection, resource: str) -> tuple[datetime | None, str]:
    cp = SyncCheckpoint.objects.filter(
        tenant_id=connection.tenant_id,
        scope=connection.credential_scope,
        resource_type=resource,
        direction=SyncCheckpoint.Direction.OUTBOUND,
    ).first()
    return (cp.last_processed_timestamp, cp.last_processed_id) if cp else (None, "")


def checkpoint_save(*, connection: Connection, resource: str, timestamp: datetime, record_id: str) -> None:
    SyncCheckpoint.objects.update_or_create(
        tenant_id=connection.tenant_id,
        scope=connection.credential_scope,
        resource_type=resource,
        direction=SyncCheckpoint.Direction.OUTBOUND,
        defaults={"last_processed_timestamp": timestamp, "last_processed_id": record_id},
    )


def connection_poll_claim(*, connection: Connection) -> bool:
    """Take this connection's poll slot: a conditional UPDATE on last_poll_at, so one run at a time."""
    now = timezone.now()
    claimed = (
        Connection.objects.filter(pk=connection.pk)
        .filter(Q(last_poll_at__isnull=True) | Q(last_poll_at=connection.last_poll_at))
        .update(last_poll_at=now)
    )
    connection.last_poll_at = now
    return bool(claimed)


def connection_poll(*, connection: Connection) -> dict[str, int]:
    """Run one poll of a connection. Three failed runs in a row pause it and alert."""
    spec = provider_get(connection.provider)
    if spec.poll is None:
        raise ValueError(f"{spec.label} has no poller.")
    if not connection_poll_claim(connection=connection):
        raise PollSkipped(f"{connection} is being polled by another worker")
    counts = {"seen": 0, "new": 0}

    def emit(record: PolledRecord) -> bool:
        counts["seen"] += 1
        is_new = inbound_event_record_polled(connection=connection, record=record)
        counts["new"] += is_new
        return is_new

    context = PollContext(
        load_checkpoint=lambda resource: checkpoint_load(connection=connection, resource=resource),
        save_checkpoint=lambda resource, ts, rid: checkpoint_save(
            connection=connection, resource=resource, timestamp=ts, record_id=rid
        ),
        emit=emit,
        secret=lambda purpose: connection_secret(connection, purpose),
        mapping=MappingContext.from_connection(connection),
    )
    try:
        spec.poll(connection, context)
    except Exception as exc:  # any failure of the source counts toward the circuit breaker
        _poll_failed(connection, exc)
        raise
    Connection.objects.filter(pk=connection.pk).update(
        consecutive_failures=0, last_success_at=timezone.now(), last_error=""
    )
    return counts


def _poll_failed(connection: Connection, exc: Exception) -> None:
    poll_failed(connection.tenant_id, connection.provider)
    with transaction.atomic():
        Connection.objects.filter(pk=connection.pk).update(
            consecutive_failures=F("consecutive_failures") + 1,
            last_error=f"{type(exc).__name__}: {exc}"[:500],
        )
        connection.refresh_from_db(fields=["consecutive_failures"])
        if connection.consecutive_failures >= settings.POLL_FAILURES_BEFORE_PAUSE:
            until = timezone.now() + timedelta(hours=settings.POLL_PAUSE_HOURS)
            Connection.objects.filter(pk=connection.pk).update(paused_until=until, consecutive_failures=0)
            alerts.alert_raise(
                tenant=connection.tenant,
                kind="tenant_paused",
                subject=f"{connection.tenant.name}: {connection.provider} polling paused for {settings.POLL_PAUSE_HOURS} h",
                body=f"{settings.POLL_FAILURES_BEFORE_PAUSE} runs in a row failed. Last error: {exc}",
            )
    logger.warning("poll.failed connection=%s error=%s", connection.public_id, exc)


def connections_poll_due() -> list[int]:
    """Connections whose cadence says a poll is due (the scheduler enqueues one task each)."""
    now = timezone.now()
    candidates = (
        Connection.objects.select_related("tenant")
        .filter(is_active=True)
        .exclude(capture_mode=Connection.CaptureMode.WEBHOOK)
    )
    return [c.pk for c in candidates if c.tenant.status == "active" and c.poll_due(now)]


def virtuous_poll_due(*, connection: Connection, now: datetime | None = None) -> bool:
    """Whether a tenant's inbound (Virtuous) poll is due: its role picks the cadence, ``off`` never."""
    now = now or timezone.now()
    if not connection.is_active or connection.polling_role == Connection.PollingRole.OFF:
        return False
    minutes = (
        connection.backstop_interval_minutes
        if connection.polling_role == Connection.PollingRole.BACKSTOP
        else connection.poll_interval_minutes
    )
    return connection.last_poll_at is None or (now - connection.last_poll_at).total_seconds() >= minutes * 60


def virtuous_polls_due() -> list[int]:
    """Tenants whose Virtuous connection is due an inbound poll."""
    now = timezone.now()
    candidates = Connection.objects.select_related("tenant").filter(
        provider="virtuous", is_active=True, tenant__status="active"
    )
    return [c.tenant_id for c in candidates if virtuous_poll_due(connection=c, now=now)]
