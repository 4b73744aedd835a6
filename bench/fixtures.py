"""Rows the benchmarks need: tenants pointed at the fake Virtuous, their backlogs, Stripe
connections and signed events, and the clean slate between benchmarks."""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal

from bench.common import ROOT, WEBHOOK_SECRET, FakeVirtuous


def tenant_make(slug: str, *, base_url: str, token: str, **fields):
    """A tenant whose Virtuous is ``base_url`` (the fake) with ``token`` as its API token."""
    from tenants import services as tenant_services
    from tenants.models import Tenant

    tenant = tenant_services.tenant_create(slug=slug, name=slug.replace("-", " ").title())
    Tenant.objects.filter(pk=tenant.pk).update(
        virtuous_base_url=base_url, virtuous_time_zone="America/Chicago", **fields
    )
    tenant.refresh_from_db()
    tenant_services.credential_set(tenant=tenant, platform="virtuous", purpose="api_token", secret=token)
    return tenant


def fake_tenants(
    fake: FakeVirtuous,
    *,
    prefix: str,
    count: int,
    limit: int,
    window: int,
    items: int = 0,
    big: int | None = None,
    org: dict | None = None,
    **fields,
) -> list:
    """``count`` tenants, each with its own fake organisation (``limit`` requests per ``window``
    seconds) and a budget equal to that limit (no headroom), each holding ``items`` gifts
    (100x for tenant number ``big``). Batching is off unless ``fields`` turn it on, so that one
    item is one call."""
    fields = {
        "hourly_request_budget": limit * 3600 // window,
        "budget_headroom_percent": 0,
        "batching_enabled": False,
        **fields,
    }
    specs = [
        {"name": f"{prefix}-{n}", "token": f"fake_{prefix}_{n}_{uuid.uuid4().hex}", "limit": limit,
         "window": window, **(org or {})}
        for n in range(count)
    ]  # fmt: skip
    fake.add_orgs(specs)
    tenants = []
    for n, spec in enumerate(specs):
        tenant = tenant_make(spec["name"], base_url=fake.url, token=spec["token"], **fields)
        if items:
            backlog(tenant, items * (100 if big == n else 1), prefix=f"{prefix}{n}")
        tenants.append(tenant)
    return tenants


def backlog(tenant, count: int, *, prefix: str) -> None:
    from integrations.types import OutboundRequest
    from sync.models import Operation, Origin
    from sync.outbound.enqueue import outbound_enqueue_many

    for start in range(0, count, 2000):
        requests = []
        for n in range(start, min(count, start + 2000)):
            tid = f"pi_{prefix}_{n}"
            amount = Decimal("25.00")
            requests.append(
                OutboundRequest(
                    operation=Operation.GIFT_TRANSACTION,
                    external_source="Stripe",
                    external_id=tid,
                    payload={
                        "transactionSource": "Stripe",
                        "transactionId": tid,
                        "amount": amount,
                        "giftDate": "2026-11-20",
                        "giftType": "Credit",
                        "contact": {"referenceId": f"cus_{prefix}_{n}", "email": f"d{n}@example.org"},
                        "designations": [{"projectCode": "GEN", "amountDesignated": amount}],
                    },
                )
            )
        outbound_enqueue_many(tenant=tenant, requests=requests, origin=Origin.WEBHOOK)


def stripe_event_template() -> str:
    event = json.loads(
        (ROOT / "tests/integrations/stripe/fixtures/payment_intent.succeeded.json").read_text()
    )
    event["id"] = "evt_@@ID@@"
    event["data"]["object"]["id"] = "pi_@@ID@@"
    event["data"]["object"]["client_secret"] = "pi_@@ID@@_secret"
    # A donor per donation, as on a giving day (one contact write and one gift write each).
    event["data"]["object"]["customer"] = "cus_@@ID@@"
    event["data"]["object"]["receipt_email"] = "donor-@@ID@@@example.org"
    event["data"]["object"]["created"] = int(time.time())
    return json.dumps(event, separators=(",", ":"))


def sign(body: str, timestamp: int) -> str:
    import hashlib
    import hmac

    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def stripe_connection(slug: str, *, fake: FakeVirtuous | None = None, org: dict | None = None, **fields):
    """A tenant with a Stripe connection whose webhook secret is ``WEBHOOK_SECRET``; with ``fake``,
    its Virtuous is a new organisation of the fake (``org``: its limit, window, faults)."""
    from integrations.services import connection_create
    from tenants import services as tenant_services
    from tenants.models import Credential, Tenant

    tenant = tenant_services.tenant_create(slug=slug, name=slug.title())
    connection = connection_create(tenant=tenant, provider="stripe", default_project_code="GEN")
    tenant_services.credential_set(
        tenant=tenant,
        platform="stripe",
        purpose=Credential.Purpose.WEBHOOK_SECRET,
        secret=WEBHOOK_SECRET,
        scope=connection.credential_scope,
    )
    if fake is not None:
        token = f"fake_{slug}_{uuid.uuid4().hex}"
        fake.add_orgs([{"name": slug, "token": token, **(org or {})}])
        Tenant.objects.filter(pk=tenant.pk).update(
            virtuous_base_url=fake.url, virtuous_time_zone="America/Chicago", **fields
        )
        tenant_services.credential_set(tenant=tenant, platform="virtuous", purpose="api_token", secret=token)
    return Tenant.objects.get(pk=tenant.pk), connection


def quiesce() -> None:
    """Leave nothing of an earlier benchmark for the next one's drains: its tenants are paused,
    their unsent items discarded and unprocessed webhooks (ingest's) set aside."""
    from integrations.models import InboundEvent
    from sync.models import OutboundItem
    from tenants.models import Tenant

    OutboundItem.objects.filter(state__in=[OutboundItem.State.PENDING, OutboundItem.State.IN_FLIGHT]).update(
        state=OutboundItem.State.DISCARDED
    )
    InboundEvent.objects.filter(
        status__in=[InboundEvent.Status.PENDING, InboundEvent.Status.PROCESSING]
    ).update(status=InboundEvent.Status.IGNORED)
    Tenant.objects.update(status=Tenant.Status.PAUSED)
