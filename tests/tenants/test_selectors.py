"""Tenant isolation: the outsider's rows are unreachable through every selector."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tenants import selectors, services
from tenants.models import AuditEvent, Credential, Tenant
from tests.conftest import OTHER_VIRTUOUS_TOKEN, VIRTUOUS_TOKEN


def test_credential_selectors_never_return_another_tenants_rows(tenant, other_tenant):
    other_cred = Credential.objects.get(tenant=other_tenant, state="active")

    assert list(selectors.credential_list(tenant=tenant).values_list("tenant_id", flat=True).distinct()) == [
        tenant.pk
    ]
    with pytest.raises(Credential.DoesNotExist):
        selectors.credential_get(tenant=tenant, public_id=other_cred.public_id)
    assert (
        selectors.credential_secret(tenant=tenant, platform="virtuous", purpose="api_token") == VIRTUOUS_TOKEN
    )
    assert OTHER_VIRTUOUS_TOKEN not in selectors.credential_secrets_for_verification(
        tenant=tenant, platform="virtuous", purpose="api_token"
    )


def test_the_active_secret_is_the_one_of_that_tenant_platform_purpose_and_scope(tenant, other_tenant):
    def secret(owner, purpose="webhook_secret", scope="conn-1"):
        return selectors.credential_secret(tenant=owner, platform="stripe", purpose=purpose, scope=scope)

    services.credential_set(
        tenant=other_tenant, platform="stripe", purpose="webhook_secret", secret="outsider", scope="conn-1"
    )
    assert secret(tenant) is None  # the outsider's, under the same platform, purpose and scope
    services.credential_set(
        tenant=tenant, platform="stripe", purpose="webhook_secret", secret="old", scope="conn-1"
    )
    services.credential_set(
        tenant=tenant, platform="stripe", purpose="webhook_secret", secret="new", scope="conn-1"
    )
    services.credential_set(
        tenant=tenant,
        platform="stripe",
        purpose="webhook_secret",
        secret="next",
        scope="conn-1",
        activate=False,
    )
    services.credential_set(
        tenant=tenant, platform="stripe", purpose="webhook_secret", secret="other", scope="conn-2"
    )

    with CaptureQueriesContext(connection) as ctx:
        assert secret(tenant) == "new"  # not the retired one, nor the pending one
    assert len(ctx.captured_queries) == 1
    assert secret(tenant, scope="conn-2") == "other"
    assert secret(tenant, scope="") is None
    assert secret(tenant, purpose="api_token") is None
    assert secret(other_tenant) == "outsider"


def test_audit_selector_is_tenant_scoped(tenant, other_tenant):
    assert selectors.audit_event_list(tenant=tenant).exists()
    assert not selectors.audit_event_list(tenant=tenant).filter(tenant=other_tenant).exists()
    assert set(selectors.audit_event_list(tenant=tenant).values_list("tenant_id", flat=True)) == {tenant.pk}
    assert AuditEvent.objects.filter(tenant=other_tenant).exists()  # the outsider does have rows


def test_staff_see_only_assigned_tenants(tenant, other_tenant, staff_user, superuser):
    tenant.assigned_staff.add(staff_user)

    assert list(selectors.tenant_list(user=staff_user)) == [tenant]
    with pytest.raises(Tenant.DoesNotExist):
        selectors.tenant_get(public_id=other_tenant.public_id, user=staff_user)
    assert set(selectors.tenant_list(user=superuser)) == {tenant, other_tenant}


def test_inactive_or_anonymous_users_see_no_tenant(tenant, staff_user):
    from django.contrib.auth.models import AnonymousUser

    tenant.assigned_staff.add(staff_user)
    staff_user.is_active = False
    staff_user.save()
    assert not selectors.tenant_list(user=staff_user).exists()
    assert not selectors.tenant_list(user=AnonymousUser()).exists()


def test_tenant_lookup_by_slug_or_uuid(tenant):
    assert selectors.tenant_get_by_ref(ref="alpha") == tenant
    assert selectors.tenant_get_by_ref(ref=str(tenant.public_id)) == tenant
    with pytest.raises(Tenant.DoesNotExist):
        selectors.tenant_get_by_ref(ref="nobody")


def test_pause_and_resume_are_audited_once(tenant):
    assert services.tenant_pause(tenant=tenant, reason="401 from Virtuous") is True
    assert services.tenant_pause(tenant=tenant, reason="again") is False
    assert tenant.status == Tenant.Status.PAUSED and tenant.paused_reason == "401 from Virtuous"
    assert services.tenant_resume(tenant=tenant) is True
    actions = list(
        AuditEvent.objects.filter(tenant=tenant, action__startswith="tenant.p").values_list(
            "action", flat=True
        )
    )
    assert actions == ["tenant.paused"]
    assert AuditEvent.objects.filter(tenant=tenant, action="tenant.resumed").count() == 1


def test_tenant_update_audits_old_and_new_values(tenant):
    services.tenant_update(
        tenant=tenant, actor=services.SYSTEM, changes={"batching_enabled": False, "batch_size": 50}
    )
    event = AuditEvent.objects.get(tenant=tenant, action="tenant.updated")
    assert event.details == {
        "batching_enabled": {"old": True, "new": False},
        "batch_size": {"old": 100, "new": 50},
    }


def test_usable_budget_applies_headroom(tenant):
    tenant.hourly_request_budget = 5000
    tenant.budget_headroom_percent = 10
    assert tenant.usable_hourly_budget == 4500
