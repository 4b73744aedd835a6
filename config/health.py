"""Liveness and readiness: what a load balancer, an orchestrator and an operator ask of a process.

* ``/healthz``: the process answers (no database, no broker): restart it when this fails.
* ``/readyz/web``: what taking webhooks needs, the database and the broker. Put this behind the
  load balancer: a webhook is stored even while the workers are down, so the web tier should keep
  taking them.
* ``/readyz``: the whole platform: database, broker, every declared schedule installed (a deployment
  that never ran ``sync_schedules_apply`` answers webhooks and submits nothing), the scheduler
  keeping the every-minute schedules on time, and at least one django-q2 cluster with a heartbeat in
  the broker. Point the orchestrator's readiness gate and the alerting at this one.

Answers are JSON with one entry per check; a failure names the check and the exception's class
only, never its text (a connection error can carry a URL with a password in it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.utils import timezone


def database_check() -> str:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
    return "reachable"


def broker_check() -> str:
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_connect_timeout=settings.HEALTH_CHECK_TIMEOUT_SECONDS,
            socket_timeout=settings.HEALTH_CHECK_TIMEOUT_SECONDS,
        )
        try:
            client.ping()
        finally:
            client.close()
        return "redis reachable"
    # The ORM broker is the database, checked above.
    return "orm broker (the database)"


def scheduler_state(*, now: datetime | None = None) -> dict[str, Any]:
    """Declared schedules missing from the database, and how late the every-minute ones are.

    The scheduler moves a schedule's ``next_run`` forward each time it queues it; every-minute
    schedules whose ``next_run`` lies well in the past mean no scheduler is running."""
    from django_q.models import Schedule

    from sync.schedules import declared_schedules

    now = now or timezone.now()
    declared = {s["name"]: s for s in declared_schedules()}
    installed = dict(Schedule.objects.filter(name__in=declared).values_list("name", "next_run"))
    minutely = [
        installed[name]
        for name, spec in declared.items()
        if name in installed and spec["schedule_type"] == Schedule.MINUTES and installed[name]
    ]
    overdue = max([(now - when).total_seconds() for when in minutely if when < now], default=0.0)
    return {"missing": sorted(set(declared) - set(installed)), "overdue_seconds": overdue}


def scheduler_check() -> str:
    state = scheduler_state()
    if state["missing"]:
        raise CheckFailed(
            f"{len(state['missing'])} declared schedule(s) not installed: run `manage.py sync_schedules_apply`"
        )
    if state["overdue_seconds"] > settings.HEALTH_SCHEDULER_STALE_SECONDS:
        raise CheckFailed(
            f"every-minute schedules are {state['overdue_seconds']:.0f} s overdue: no scheduler is running "
            "(a qcluster with Q_SCHEDULER=true)"
        )
    return f"on time ({state['overdue_seconds']:.0f} s behind at most)"


def cluster_state() -> dict[str, Any]:
    """django-q2 clusters whose last heartbeat (saved to the broker every guard cycle) is fresh."""
    from django_q.conf import Conf
    from django_q.status import Stat

    now = timezone.now()
    stats = Stat.get_all()
    alive = [
        s
        for s in stats
        if s.status not in (Conf.STOPPED, Conf.STOPPING)
        and (now - s.timestamp).total_seconds() <= settings.HEALTH_CLUSTER_STALE_SECONDS
    ]
    return {"alive": len(alive), "seen": len(stats)}


def cluster_check() -> str:
    state = cluster_state()
    if not state["alive"]:
        raise CheckFailed("no django-q2 cluster has a recent heartbeat: start `manage.py qcluster`")
    return f"{state['alive']} cluster(s) alive"


class CheckFailed(Exception):
    """A check that ran and found a problem; its message is written for the operator."""


WEB_CHECKS: dict[str, Callable[[], str]] = {"database": database_check, "broker": broker_check}
PLATFORM_CHECKS: dict[str, Callable[[], str]] = {
    **WEB_CHECKS,
    "schedules": scheduler_check,
    "clusters": cluster_check,
}


def run_checks(checks: dict[str, Callable[[], str]]) -> tuple[bool, dict[str, dict[str, Any]]]:
    results: dict[str, dict[str, Any]] = {}
    for name, check in checks.items():
        if name in ("schedules", "clusters") and not results.get("database", {}).get("ok", True):
            results[name] = {"ok": False, "detail": "not checked: the database is unreachable"}
            continue
        if name == "clusters" and not results.get("broker", {}).get("ok", True):
            results[name] = {"ok": False, "detail": "not checked: the broker is unreachable"}
            continue
        try:
            results[name] = {"ok": True, "detail": check()}
        except CheckFailed as exc:
            results[name] = {"ok": False, "detail": str(exc)}
        except Exception as exc:  # any failure is "not ready"; its text may hold secrets
            results[name] = {"ok": False, "detail": f"unreachable ({type(exc).__name__})"}
    return all(r["ok"] for r in results.values()), results


def liveness(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "alive"})


def readiness(request: HttpRequest, *, web_only: bool = False) -> JsonResponse:
    ok, results = run_checks(WEB_CHECKS if web_only else PLATFORM_CHECKS)
    return JsonResponse(
        {"status": "ready" if ok else "not ready", "checks": results},
        status=200 if ok else 503,
        headers={"Cache-Control": "no-store"},
    )
