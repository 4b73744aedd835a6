"""End-to-end fixtures: a tenant pointed at the in-process Virtuous sandbox, served by live_server."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from integrations.sandbox.models import SandboxContact, SandboxGift, SandboxOrganization, SandboxRecurringGift
from integrations.sandbox.services import sandbox_contact_create, sandbox_gift_create, sandbox_org_create
from integrations.types import Operation, OutboundRequest
from sync.models import Origin, OutboundItem
from sync.outbound.enqueue import outbound_enqueue
from tenants import services as tenant_services
from tenants.models import Tenant


def point_tenant_at_sandbox(tenant: Tenant, base_url: str, **org_kwargs) -> SandboxOrganization:
    org, token = sandbox_org_create(name=f"{tenant.name} (Sandbox)", **org_kwargs)
    tenant_services.tenant_virtuous_url_change(
        tenant=tenant, base_url=f"{base_url}/sandbox/virtuous", api_token=token, actor=tenant_services.SYSTEM
    )
    tenant_services.tenant_update(
        tenant=tenant, actor=tenant_services.SYSTEM, changes={"virtuous_time_zone": "America/Chicago"}
    )
    return org


@pytest.fixture
def sandboxed(live_server, transactional_db):
    """Returns a function that points a tenant at a fresh sandbox organisation."""

    def _sandboxed(tenant: Tenant, **org_kwargs) -> SandboxOrganization:
        return point_tenant_at_sandbox(tenant, live_server.url, **org_kwargs)

    return _sandboxed


def sandbox_donor_with_gift(org: SandboxOrganization) -> tuple[SandboxContact, SandboxGift]:
    """One donor and one $40 Stripe gift (``pi_1``) in the sandbox: what a refund or schedule needs."""
    donor = sandbox_contact_create(organization=org, body={"name": "Ada"})
    gift = sandbox_gift_create(
        organization=org,
        contact_id=donor.pk,
        amount=Decimal("40.00"),
        gift_date=dt.date(2026, 3, 1),
        designations=[{"projectCode": "GEN", "amountDesignated": "40.00"}],
        transaction_source="Stripe",
        transaction_id="pi_1",
    )
    return donor, gift


def direct_create_enqueue(
    tenant: Tenant, operation: str, donor: SandboxContact, gift: SandboxGift, n: int = 1
) -> OutboundItem:
    """Queue a refund of ``gift`` (``re_<n>``) or a monthly schedule for ``donor`` (``sub_<n>``)."""
    if operation == Operation.REVERSING_TRANSACTION:
        payload = {"reversedGiftId": gift.pk, "giftDate": "2026-03-05", "notes": f"refund re_{n}"}
        external_id = f"re_{n}"
    else:
        external_id = f"sub_{n}"
        payload = {
            "transactionSource": "Stripe",
            "transactionId": external_id,
            "contactId": donor.pk,
            "startDate": "2026-03-01",
            "frequency": "Monthly",
            "amount": "10.00",
            "designations": [{"projectCode": "GEN", "amountDesignated": "10.00"}],
        }
    request = OutboundRequest(operation, "Stripe", external_id, payload)
    item, _ = outbound_enqueue(tenant=tenant, request=request, origin=Origin.WEBHOOK)
    return item


def direct_create_records(org: SandboxOrganization, operation: str) -> list[int]:
    """Ids of the reversals or schedules the sandbox holds for ``org``, oldest first."""
    if operation == Operation.REVERSING_TRANSACTION:
        rows = SandboxGift.objects.filter(organization=org, gift_type="ReversingTransaction")
    else:
        rows = SandboxRecurringGift.objects.filter(organization=org)
    return list(rows.order_by("pk").values_list("pk", flat=True))
