"""The nightly batch: held transactions become contacts and gifts, and webhooks fire."""

from collections import Counter

from django.db import transaction
from django.utils import timezone

from integrations.sandbox import payloads
from integrations.sandbox.limits import counters_add
from integrations.sandbox.models import (
    SandboxGift,
    SandboxOrganization,
    SandboxTransaction,
)
from integrations.sandbox.services.contacts import contact_resource, contact_transaction_apply
from integrations.sandbox.services.gifts import gift_contact, gift_from_transaction_create
from integrations.sandbox.webhooks import Event, webhooks_deliver

Kind = SandboxTransaction.Kind
State = SandboxTransaction.State


# --- the nightly batch --------------------------------------------------------------------


def sandbox_batch_run(*, organization: SandboxOrganization | None = None) -> dict[str, int]:
    """Process the holding state of one organisation (or all): the "nightly batch".

    Contacts first (match by reference, then e-mail; update or create), then gifts (held and
    needs-update: matched → gift + giftCreate, unmatched → needs_update).
    Each item is claimed with a conditional UPDATE, so two runs at once never process one twice.
    """
    organizations = [organization] if organization else list(SandboxOrganization.objects.all())
    totals: Counter[str] = Counter()
    for org in organizations:
        totals.update(_batch_run_one(org))
    keys = ("contacts_created", "contacts_updated", "gifts_created", "needs_update")
    return {k: totals[k] for k in keys} | {
        "webhooks_sent": totals["sent"],
        "webhooks_failed": totals["failed"],
    }


def _batch_run_one(organization: SandboxOrganization) -> Counter[str]:
    totals: Counter[str] = Counter()
    plan = (
        (Kind.CONTACT, [State.HELD]),
        (Kind.GIFT, [State.HELD]),
    )
    for kind, states in plan:
        pending = SandboxTransaction.objects.filter(organization=organization, kind=kind, state__in=states)
        for tx in pending.order_by("pk").only("pk", "state", "submit_count").iterator(chunk_size=500):
            outcome, events = _process(organization, kind, tx)
            if outcome:
                totals[outcome] += 1
            totals.update(webhooks_deliver(organization=organization, events=events))
    return totals


def _process(
    organization: SandboxOrganization, kind: str, claimed: SandboxTransaction
) -> tuple[str, list[Event]]:
    now = timezone.now()
    with transaction.atomic():
        tx = SandboxTransaction.objects.filter(pk=claimed.pk).only("payload").first()
        took = SandboxTransaction.objects.filter(
            pk=claimed.pk, state=claimed.state, submit_count=claimed.submit_count
        ).update(state=State.PROCESSED, processed_at=now)
        if not took or tx is None:
            return "", []  # another run took it, or it was resubmitted: the next run sees it
        payload = tx.payload
        if kind == Kind.CONTACT:
            contact, event = contact_transaction_apply(organization, payload, now)
            SandboxTransaction.objects.filter(pk=claimed.pk).update(result_id=contact.pk)
            outcome = "contacts_created" if event == "contactCreate" else "contacts_updated"
            return outcome, [(event, contact_resource(contact))]
        existing = SandboxGift.objects.filter(
            organization=organization,
            transaction_source=payload["transactionSource"],
            transaction_id=payload["transactionId"],
        ).first()
        if existing is not None:
            SandboxTransaction.objects.filter(pk=claimed.pk).update(result_id=existing.pk)
            return "", []
        contact = gift_contact(organization, payload)
        if contact is None:
            SandboxTransaction.objects.filter(pk=claimed.pk).update(
                state=State.NEEDS_UPDATE, processed_at=None
            )
            return ("needs_update" if claimed.state == State.HELD else ""), []
        gift = gift_from_transaction_create(organization, payload, contact, now)
        SandboxTransaction.objects.filter(pk=claimed.pk).update(result_id=gift.pk)
        counters_add(organization_id=organization.pk, gifts_created=1)
    return "gifts_created", [("giftCreate", payloads.gift_json(gift))]


def sandbox_needs_update_resolve(*, organization: SandboxOrganization) -> dict[str, int]:
    """A person working the Imports UI's needs-update list: every gift there whose contact can now
    be matched becomes a gift (giftCreate fires); the rest stay. Returns the counts."""
    totals: Counter[str] = Counter()
    stuck = SandboxTransaction.objects.filter(
        organization=organization, kind=Kind.GIFT, state=State.NEEDS_UPDATE
    ).only("pk", "state", "submit_count")
    for tx in stuck.order_by("pk").iterator(chunk_size=500):
        outcome, events = _process(organization, Kind.GIFT, tx)
        if outcome:
            totals[outcome] += 1
        totals.update(webhooks_deliver(organization=organization, events=events))
    return {"gifts_created": totals["gifts_created"], "still_needs_update": stuck.count()}
