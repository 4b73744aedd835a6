"""Times and durations as a person reads them: in the tenant's time zone, with how long ago.

Times are stored in UTC; staff answer customers who think in their own zone, so every time on
the console pages is shown in the tenant's time zone (Virtuous's, from onboarding) with the
zone's abbreviation, and the UTC moment on hover.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


def _zone(tenant_or_zone) -> zoneinfo.ZoneInfo:
    name = getattr(tenant_or_zone, "virtuous_time_zone", tenant_or_zone) or "UTC"
    try:
        return zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


@register.filter
def duration(value: timedelta | float | int | None) -> str:
    """'45 s', '4 min', '3 h 20 min', '2 days 4 h' (the two largest units, rounded down)."""
    if value is None or value == "":
        return "—"
    seconds = int(value.total_seconds() if isinstance(value, timedelta) else float(value))
    if seconds < 0:
        seconds = -seconds
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if minutes < 60:
        return f"{minutes} min"
    if hours < 24:
        rest = minutes - hours * 60
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    rest = hours - days * 24
    unit = "day" if days == 1 else "days"
    return f"{days} {unit} {rest} h" if rest else f"{days} {unit}"


@register.filter
def ago(value: datetime | None, now: datetime | None = None) -> str:
    """'just now', '4 min ago', 'in 3 h' (for times ahead, such as a pause's end)."""
    if not value:
        return "never"
    now = now or timezone.now()
    delta = now - value
    if abs(delta) < timedelta(seconds=45):
        return "just now"
    return f"{duration(delta)} ago" if delta > timedelta(0) else f"in {duration(delta)}"


@register.filter
def local(value: datetime | None, tenant_or_zone=None) -> str:
    """The moment in the tenant's zone: '27 Nov 2026, 14:05 CST'."""
    if not value:
        return "—"
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    shown = moment.astimezone(_zone(tenant_or_zone))
    return f"{shown.day} {shown:%b %Y, %H:%M} {shown.tzname()}"


@register.filter
def local_hour(value: datetime, tenant_or_zone=None) -> str:
    """An hour label for the chart's axis: '14:00'."""
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    return f"{moment.astimezone(_zone(tenant_or_zone)):%H:00}"


@register.simple_tag
def when(value: datetime | None, tenant_or_zone=None, empty: str = "never") -> SafeString:
    """'27 Nov 2026, 14:05 CST (4 min ago)', with the UTC time on hover."""
    if not value:
        return format_html("<span class='muted'>{}</span>", empty)
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    return format_html(
        "<time datetime='{}' title='{} UTC'>{}</time> <span class='ago'>({})</span>",
        moment.astimezone(UTC).isoformat(),
        f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
        local(moment, tenant_or_zone),
        ago(moment),
    )
