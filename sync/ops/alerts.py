"""Per-tenant alerts: e-mail through Django's mail backend, plus an optional chat webhook.

Alerts are throttled per tenant and kind: within one quiet window a storm of dead letters makes
one alert whose ``suppressed_count`` grows, not thousands of messages.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from integrations.common.http import UnsafeURLError, http_session
from sync.models import Alert
from tenants.models import Tenant

logger = logging.getLogger("giftline.sync.alerts")


def alert_raise(*, tenant: Tenant, kind: str, subject: str, body: str) -> Alert | None:
    """Record an alert and schedule its delivery, unless one of this kind went out in the window.

    Returns the new alert, or None when it was folded into the current window's alert.
    """
    window = settings.ALERT_QUIET_SECONDS
    slot = int(timezone.now().timestamp() // window)
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                tenant=tenant, kind=kind, subject=subject[:200], body=body, throttle_slot=slot
            )
    except IntegrityError:
        Alert.objects.filter(tenant=tenant, kind=kind, throttle_slot=slot).update(
            suppressed_count=F("suppressed_count") + 1
        )
        return None
    transaction.on_commit(lambda: _schedule_delivery(alert.pk))
    return alert


def _schedule_delivery(alert_id: int) -> None:
    from django_q.tasks import async_task

    async_task("sync.tasks.alert_deliver", alert_id, task_name=f"alert-{alert_id}")


def alert_deliver(*, alert: Alert) -> bool:
    """Send one alert by e-mail and chat webhook. Failures are recorded on the alert, not raised."""
    tenant = alert.tenant
    errors: list[str] = []
    recipients = tenant.alert_email_list or list(settings.GIFTLINE_ALERT_FALLBACK_EMAILS)
    if recipients:
        try:
            send_mail(f"[Giftline] {alert.subject}", alert.body, None, recipients)
        except OSError as exc:
            errors.append(f"mail: {exc}")
    if tenant.alert_webhook_url:
        try:
            response = http_session(log_context={"tenant": tenant.slug}, guard_urls=True).post(
                tenant.alert_webhook_url, json={"text": f"*{alert.subject}*\n{alert.body}"}, timeout=(3, 10)
            )
            if response.status_code >= 300:
                errors.append(f"webhook: HTTP {response.status_code}")
        except (UnsafeURLError, OSError) as exc:
            errors.append(f"webhook: {exc}")
    Alert.objects.filter(pk=alert.pk).update(
        delivered_at=None if errors else timezone.now(), delivery_error="; ".join(errors)[:500]
    )
    if errors:
        logger.warning("alert.delivery_failed tenant=%s kind=%s errors=%s", tenant.slug, alert.kind, errors)
    return not errors
