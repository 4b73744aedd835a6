"""The periodic work is declared in code, and applying it is idempotent."""

from importlib import import_module

from django.core.management import call_command
from django_q.models import Schedule

from sync.schedules import declared_schedules, schedules_apply

# Tasks that run on a clock; the rest are enqueued by these (per tenant or per connection).
PERIODIC = {
    "sync.tasks.outbound_dispatch",
    "sync.tasks.inbound_dispatch",
    "sync.tasks.connections_poll_due",
    "sync.tasks.outbound_maintenance",
    "sync.tasks.outbound_reconcile_all",
    "sync.tasks.reconcile_all",
    "sync.tasks.drift_all",
    "sync.tasks.virtuous_polls_due",
    "sync.tasks.partner_dispatch",
    "sync.tasks.data_purge",
}


def test_every_periodic_task_is_scheduled_and_importable():
    funcs = {s["func"] for s in declared_schedules()}
    assert funcs == PERIODIC
    for func in funcs:
        module, name = func.rsplit(".", 1)
        assert callable(getattr(import_module(module), name))


def test_dispatchers_follow_the_setting(settings):
    settings.OUTBOUND_DISPATCHERS = 3
    names = [s["name"] for s in declared_schedules()]
    assert [n for n in names if n.startswith("outbound-dispatch-")] == [
        f"outbound-dispatch-{n}" for n in (1, 2, 3)
    ]


def test_apply_is_idempotent_and_removes_stale_ones(db, settings):
    Schedule.objects.create(
        name="outbound-dispatch-9",
        func="sync.tasks.outbound_dispatch",
        schedule_type=Schedule.MINUTES,
        minutes=1,
    )
    Schedule.objects.create(name="someone-elses", func="x.y", schedule_type=Schedule.HOURLY)
    applied, removed = schedules_apply()
    assert removed == 1
    call_command("sync_schedules_apply", stdout=None)
    assert (
        Schedule.objects.filter(name__startswith="outbound-dispatch-").count()
        == settings.OUTBOUND_DISPATCHERS
    )
    assert Schedule.objects.filter(name="someone-elses").exists()
    assert Schedule.objects.count() == applied + 1
