import responses
from django.core import mail

from sync.models import Alert
from sync.ops.alerts import alert_deliver, alert_raise


def test_a_storm_sends_one_alert_and_counts_the_rest(tenant, django_capture_on_commit_callbacks):
    tenant.alert_emails = "a@alpha.example, b@alpha.example"
    tenant.save()
    with django_capture_on_commit_callbacks(execute=True):
        results = [
            alert_raise(tenant=tenant, kind="dead_letter", subject="dead", body="x") for _ in range(50)
        ]
    assert sum(r is not None for r in results) == 1
    alert = Alert.objects.get(tenant=tenant)
    assert alert.suppressed_count == 49 and alert.delivered_at is not None
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["a@alpha.example", "b@alpha.example"]


def test_alerts_are_per_tenant_and_per_kind(tenant, other_tenant):
    assert alert_raise(tenant=tenant, kind="dead_letter", subject="s", body="b")
    assert alert_raise(tenant=tenant, kind="tenant_paused", subject="s", body="b")
    assert alert_raise(tenant=other_tenant, kind="dead_letter", subject="s", body="b")
    assert Alert.objects.count() == 3


@responses.activate
def test_webhook_delivery_posts_to_the_tenants_url(tenant):
    tenant.alert_webhook_url = "https://hooks.example.org/T000/B000"
    tenant.save()
    responses.post("https://hooks.example.org/T000/B000", status=200)
    alert = alert_raise(tenant=tenant, kind="dead_letter", subject="3 dead letters", body="details")
    assert alert_deliver(alert=alert) is True
    assert b"3 dead letters" in responses.calls[0].request.body


def test_webhook_to_a_private_address_is_refused_and_recorded(tenant, settings):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    tenant.alert_webhook_url = "http://127.0.0.1:9/hook"
    tenant.save()
    alert = alert_raise(tenant=tenant, kind="dead_letter", subject="s", body="b")
    assert alert_deliver(alert=alert) is False
    alert.refresh_from_db()
    assert alert.delivered_at is None and "non-public address" in alert.delivery_error
