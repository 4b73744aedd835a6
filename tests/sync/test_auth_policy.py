"""One 401 policy: whichever job meets a revoked Virtuous key, the tenant is paused and alerted."""

from __future__ import annotations

import re

import pytest
import responses
from django.core import mail

from integrations.virtuous.errors import VirtuousError
from integrations.virtuous.services import virtuous_subscription_create
from sync.clients import virtuous_client
from sync.models import Alert, Origin
from sync.ops.imports.files import ImportStopped
from sync.ops.imports.validate import ContactResolver
from sync.ops.offboard import OffboardError, tenant_offboard
from sync.ops.reconcile import reconcile_run
from sync.outbound.drain import outbound_drain
from sync.outbound.enqueue import outbound_enqueue_many
from tenants.models import Tenant
from tenants.services import SYSTEM
from tests.sync.conftest import gift_request

ANY_VIRTUOUS = re.compile(r"https://api\.virtuoussoftware\.com/.*")


def _drain(tenant: Tenant) -> None:
    outbound_enqueue_many(tenant=tenant, requests=[gift_request(1)], origin=Origin.WEBHOOK)
    assert outbound_drain(tenant=tenant, max_budget_wait=0).stopped == "paused"


def _reconcile(tenant: Tenant) -> None:
    with pytest.raises(VirtuousError):
        reconcile_run(tenant=tenant, passes=("missed_webhooks",))


def _import_validation(tenant: Tenant) -> None:
    resolver = ContactResolver(virtuous_client(tenant, keep_reserve=True), reference_source="Stripe")
    with pytest.raises(ImportStopped):
        resolver.resolve("donor-1", "ada@example.org")


def _offboard(tenant: Tenant) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(virtuous_webhook_id="42")
    tenant.refresh_from_db()
    with pytest.raises(OffboardError):
        tenant_offboard(tenant=tenant, actor=SYSTEM)


def _onboarding(tenant: Tenant) -> None:
    with pytest.raises(VirtuousError):
        virtuous_subscription_create(tenant=tenant, base_url="https://giftline.example")


@pytest.mark.parametrize("job", [_drain, _reconcile, _import_validation, _offboard, _onboarding])
def test_a_401_met_by_any_job_pauses_the_tenant_and_alerts(
    job, tenant, other_tenant, django_capture_on_commit_callbacks
):
    # given a tenant whose Virtuous key was revoked, with people to alert
    Tenant.objects.filter(pk=tenant.pk).update(alert_emails="ops@alpha.example")
    tenant.refresh_from_db()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for method in (responses.GET, responses.POST, responses.PUT, responses.DELETE):
            mock.add(method, ANY_VIRTUOUS, status=401, body="Authorization has been denied for this request.")
        # when the job calls Virtuous
        with django_capture_on_commit_callbacks(execute=True):
            job(tenant)
    # then the tenant is paused with the reason, its people alerted once, the outsider untouched
    tenant.refresh_from_db()
    other_tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.PAUSED
    assert Alert.objects.filter(tenant=tenant, kind="tenant_paused").count() == 1
    assert [m.subject for m in mail.outbox] == ["[Giftline] Alpha Food Bank: syncing paused"]
    assert other_tenant.status == Tenant.Status.ACTIVE
    assert not Alert.objects.filter(tenant=other_tenant).exists()
