"""Schedules declared in code; `manage.py sync_schedules_apply` makes the database match."""

from __future__ import annotations

from django.conf import settings
from django_q.models import Schedule


def declared_schedules() -> list[dict]:
    schedules = [
        {
            "name": f"outbound-dispatch-{n}",
            "func": "sync.tasks.outbound_dispatch",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
        }
        for n in range(1, settings.OUTBOUND_DISPATCHERS + 1)
    ]
    schedules += [
        {
            "name": "inbound-dispatch",
            "func": "sync.tasks.inbound_dispatch",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
        },
        {
            "name": "connections-poll",
            "func": "sync.tasks.connections_poll_due",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
        },
        {
            "name": "outbound-maintenance",
            "func": "sync.tasks.outbound_maintenance",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
        },
        {
            "name": "virtuous-polls",
            "func": "sync.tasks.virtuous_polls_due",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
        },
        {
            "name": "partner-dispatch",
            "func": "sync.tasks.partner_dispatch",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
        },
        {
            "name": "outbound-reconcile",
            "func": "sync.tasks.outbound_reconcile_all",
            "schedule_type": Schedule.HOURLY,
            "minutes": None,
        },
        {
            "name": "outbound-reconcile-daily",
            "func": "sync.tasks.reconcile_all",
            "schedule_type": Schedule.DAILY,
            "minutes": None,
        },
        {
            # Retention (sync/ops/retention.py): bounded batches, so it never holds a worker long.
            "name": "data-purge",
            "func": "sync.tasks.data_purge",
            "schedule_type": Schedule.DAILY,
            "minutes": None,
        },
        {
            "name": "outbound-drift-weekly",
            "func": "sync.tasks.drift_all",
            "schedule_type": Schedule.WEEKLY,
            "minutes": None,
        },
    ]
    return schedules


def schedules_apply() -> tuple[int, int]:
    """Create or update the declared schedules and delete ours that are no longer declared."""
    declared = declared_schedules()
    names = {s["name"] for s in declared}
    for spec in declared:
        Schedule.objects.update_or_create(
            name=spec["name"],
            defaults={
                "func": spec["func"],
                "schedule_type": spec["schedule_type"],
                "minutes": spec["minutes"],
                "repeats": -1,
            },
        )
    prefixes = ("outbound-", "inbound-", "connections-", "data-")
    stale = Schedule.objects.filter(name__regex=r"^(" + "|".join(prefixes) + ")").exclude(name__in=names)
    removed, _ = stale.delete()
    return len(declared), removed
