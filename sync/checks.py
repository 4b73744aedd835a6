"""System checks of the sync room that need the database (run by `migrate` and
`manage.py check --database default`)."""

from __future__ import annotations

from django.core.checks import Tags, Warning, register
from django.db import DatabaseError


@register(Tags.database)
def schedules_installed(app_configs=None, databases=None, **kwargs) -> list[Warning]:
    """A deployment that never ran ``sync_schedules_apply`` takes webhooks and submits nothing."""
    if not databases or "default" not in databases:
        return []
    from config.health import scheduler_state

    try:
        missing = scheduler_state()["missing"]
    except DatabaseError:
        # Not migrated yet (migrate runs its checks before it migrates): nothing to judge.
        return []
    if not missing:
        return []
    return [
        Warning(
            f"{len(missing)} declared schedule(s) are not installed ({', '.join(missing[:4])}"
            f"{', …' if len(missing) > 4 else ''}): nothing will be submitted or polled.",
            hint="Run `manage.py sync_schedules_apply` (after every upgrade, with the migrations).",
            id="giftline.W101",
        )
    ]
