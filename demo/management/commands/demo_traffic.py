"""Send the demo tenant a few real donations and follow them to confirmation (DEBUG only).

Runs beside `make run` once the web server answers: it subscribes the demo tenant to the
sandbox's webhooks, posts signed Donorbox donation webhooks to the tenant's own webhook URL
(the real capture path), waits for the worker to submit them, runs the sandbox's nightly batch
and waits for the signed giftCreate webhooks to confirm them.
"""

import json
import time
import uuid
from datetime import UTC, datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from integrations.common.http import http_session
from integrations.donorbox.webhooks import sign
from integrations.models import Connection
from integrations.services import connection_create
from integrations.virtuous.services import connection_webhook_url, virtuous_subscription_create
from sync.models import OutboundItem
from tenants import services
from tenants.management.base import CLI
from tenants.models import Credential, Tenant

DEMO_DONORBOX_SECRET = "demo-donorbox-signing-secret"  # demo only: refused without DEBUG
DONORS = [("Ada", "Lovelace"), ("Grace", "Hopper"), ("Katherine", "Johnson")]


class Command(BaseCommand):
    help = "Post demo donations through the real webhook path and follow them to confirmation (DEBUG only)."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--wait", type=float, default=120.0, help="Seconds to wait for each stage")

    def handle(self, *args, **options):
        if not settings.DEBUG or not settings.SANDBOX_ENABLED:
            raise CommandError("demo_traffic needs DEBUG=true and SANDBOX_ENABLED=true.")
        base_url = options["base_url"]
        tenant = Tenant.objects.get(slug="demo")
        if not tenant.virtuous_webhook_id:
            virtuous_subscription_create(tenant=tenant, base_url=base_url, actor=CLI)
            self.stdout.write("demo: subscribed the demo tenant to the sandbox's webhooks")
        connection = self._donorbox(tenant)
        url = connection_webhook_url(connection=connection, base_url=base_url)
        ids = [self._post_donation(url, first, last) for first, last in DONORS]
        self.stdout.write(f"demo: posted {len(ids)} signed Donorbox donations to {url}")
        gifts = OutboundItem.objects.filter(tenant=tenant, operation="gift_transaction", external_id__in=ids)
        self._wait(
            options["wait"],
            lambda: gifts.filter(state="submitted").count() == len(ids),
            "submitted to Virtuous",
        )
        from integrations.sandbox.models import SandboxOrganization
        from integrations.sandbox.services import sandbox_batch_run

        organization = SandboxOrganization.objects.get(name=tenant.virtuous_org_name)
        sandbox_batch_run(organization=organization)
        self.stdout.write(
            "demo: ran the sandbox's nightly batch (Sandbox organizations → Run nightly batch now)"
        )
        self._wait(
            options["wait"],
            lambda: gifts.filter(state="confirmed").count() == len(ids),
            "confirmed by webhook",
        )
        self.stdout.write("demo: see them in the admin under Sync → Outbound items and Tenant health")

    def _donorbox(self, tenant: Tenant) -> Connection:
        connection = Connection.objects.filter(tenant=tenant, provider="donorbox").first()
        if connection is None:
            connection = connection_create(
                tenant=tenant,
                provider="donorbox",
                name="Demo Donorbox",
                default_project_code="GEN",
                actor=CLI,
            )
            services.credential_set(
                tenant=tenant,
                platform="donorbox",
                purpose=Credential.Purpose.WEBHOOK_SECRET,
                secret=DEMO_DONORBOX_SECRET,
                scope=connection.credential_scope,
                actor=CLI,
            )
        return connection

    def _post_donation(self, url: str, first: str, last: str) -> str:
        donation_id = str(uuid.uuid4().int % 10**9)
        body = json.dumps(
            [
                {
                    "id": int(donation_id),
                    "amount": "25.00",
                    "currency": "usd",
                    "status": "paid",
                    "donation_type": "stripe",
                    "donation_date": datetime.now(UTC).isoformat(),
                    "campaign": {"id": 1, "name": "Demo appeal"},
                    "donor": {
                        "id": abs(hash((first, last))) % 10**6,
                        "first_name": first,
                        "last_name": last,
                        "email": f"{first.lower()}@example.org",
                    },
                }
            ]
        ).encode()
        response = http_session(log_context={"tenant": "demo"}).post(
            url,
            data=body,
            headers={
                "Content-Type": "application/json",
                "Donorbox-Signature": sign(body, DEMO_DONORBOX_SECRET, int(time.time())),
            },
        )
        if response.status_code != 200:
            raise CommandError(f"The webhook URL answered {response.status_code}: {response.text[:200]}")
        return donation_id

    def _wait(self, seconds: float, done, stage: str) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if done():
                self.stdout.write(f"demo: all demo gifts {stage}")
                return
            time.sleep(1)
        raise CommandError(
            f"Demo gifts were not {stage} within {seconds:.0f} s; is the worker (qcluster) running?"
        )
