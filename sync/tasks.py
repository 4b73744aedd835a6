"""django-q2 entry points: thin wrappers that look rows up and call a service.

Tasks may run twice; every service they call is idempotent, and retry state is in our tables.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model

from integrations.models import Connection
from sync.inbound import drain as inbound
from sync.inbound import polling
from sync.models import Alert, ImportRun
from sync.ops import alerts, reconcile, retention
from sync.ops.imports import console as imports_console
from sync.outbound import confirm, dispatch
from sync.two_way import partner_drain as partner_submit
from tenants.models import Tenant
from tenants.services import Actor


def outbound_dispatch() -> dict[str, int]:
    return dispatch.outbound_dispatch()


def outbound_maintenance() -> dict[str, int]:
    return dispatch.outbound_maintenance()


def outbound_reconcile_all() -> int:
    from django_q.tasks import async_task

    tenants = Tenant.objects.filter(status=Tenant.Status.ACTIVE).values_list("pk", flat=True)
    for tenant_id in tenants:
        async_task("sync.tasks.outbound_reconcile", tenant_id, task_name=f"reconcile-{tenant_id}")
    return len(tenants)


def outbound_reconcile(tenant_id: int) -> dict[str, int]:
    tenant = Tenant.objects.get(pk=tenant_id)
    return confirm.outbound_reconcile_submitted(tenant=tenant)


def reconcile_all() -> int:
    """Daily: stuck, needs-update and missed webhooks for every active tenant (one task each)."""
    return _per_active_tenant("sync.tasks.reconcile_tenant", "reconcile-daily")


def drift_all() -> int:
    """Weekly: the drift sample for every active tenant (one call per sampled record)."""
    return _per_active_tenant("sync.tasks.drift_tenant", "drift")


def _per_active_tenant(func: str, label: str) -> int:
    from django_q.tasks import async_task

    tenants = Tenant.objects.filter(status=Tenant.Status.ACTIVE).values_list("pk", flat=True)
    for tenant_id in tenants:
        async_task(func, tenant_id, task_name=f"{label}-{tenant_id}")
    return len(tenants)


def reconcile_tenant(tenant_id: int) -> dict:
    tenant = Tenant.objects.get(pk=tenant_id)
    return reconcile.reconcile_run(tenant=tenant, passes=("stuck", "missed_webhooks"))


def drift_tenant(tenant_id: int) -> dict:
    tenant = Tenant.objects.get(pk=tenant_id)
    return reconcile.reconcile_run(tenant=tenant, passes=("drift",))


def data_purge() -> dict[str, dict[str, int]]:
    """Daily: purge what each tenant's retention allows (see sync/ops/retention.py)."""
    return retention.data_purge().counts


def alert_deliver(alert_id: int) -> bool:
    alert = Alert.objects.select_related("tenant").get(pk=alert_id)
    if alert.delivered_at is not None:
        return True  # a task that runs twice sends once
    return alerts.alert_deliver(alert=alert)


def inbound_dispatch() -> dict[str, int]:
    return inbound.inbound_drain()


def connections_poll_due() -> int:
    from django_q.tasks import async_task

    due = polling.connections_poll_due()
    for connection_id in due:
        async_task("sync.tasks.connection_poll", connection_id, task_name=f"poll-{connection_id}")
    return len(due)


def virtuous_polls_due() -> int:
    """Every minute: one inbound poll task per tenant whose Virtuous polling is due."""
    from django_q.tasks import async_task

    due = polling.virtuous_polls_due()
    for tenant_id in due:
        async_task("sync.tasks.virtuous_poll", tenant_id, task_name=f"virtuous-poll-{tenant_id}")
    return len(due)


def virtuous_poll(tenant_id: int) -> dict[str, int]:
    tenant = Tenant.objects.get(pk=tenant_id)
    connection = Connection.objects.get(tenant=tenant, provider="virtuous")
    if not polling.virtuous_poll_due(connection=connection) or not polling.connection_poll_claim(
        connection=connection
    ):
        return {"skipped": 1}
    return reconcile.reconcile_run(tenant=tenant, passes=("missed_webhooks",))["missed_webhooks"]


def partner_dispatch() -> dict[str, int]:
    return partner_submit.partner_dispatch()


def connection_poll(connection_id: int) -> dict[str, int]:
    connection = Connection.objects.select_related("tenant").get(pk=connection_id)
    try:
        return polling.connection_poll(connection=connection)
    except polling.PollSkipped:
        return {"skipped": 1}


def import_run_validate(run_id: int) -> str:
    """A console upload's validation pass (contacts looked up on the bulk budget)."""
    return imports_console.import_run_validate_now(
        ImportRun.objects.select_related("tenant").get(pk=run_id)
    ).phase


def import_run_enqueue(run_id: int) -> str:
    return imports_console.import_run_enqueue_now(
        ImportRun.objects.select_related("tenant").get(pk=run_id)
    ).phase


def import_run_signoff(run_id: int, user_id: int | None = None) -> bool | None:
    """The sign-off a person asked for in the console, recorded under their name."""
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    run = ImportRun.objects.select_related("tenant").get(pk=run_id)
    signoff = imports_console.import_run_signoff_now(run, actor=Actor(user=user, via="admin"))
    return None if signoff is None else signoff["balanced"]
