"""What the fake Virtuous does: organisations, the holding state, the nightly batch, direct writes.

Transactions (``Contact/Transaction``, ``v2/Gift/Transaction(s)``, ``Gift/ReversingTransaction``)
only land in ``SandboxTransaction`` rows, one per organisation+kind+source+external id; the
nightly batch (:func:`sandbox_batch_run`) turns them into contacts and gifts and fires webhooks.
Direct writes (``POST/PUT /api/Contact``, the "UI" helpers used by tests) change records at once
and fire their webhook immediately. Webhooks are delivered after the database work committed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from integrations.sandbox import payloads
from integrations.sandbox.limits import counters_add
from integrations.sandbox.models import (
    WEBHOOK_TOGGLES,
    SandboxContact,
    SandboxContactReference,
    SandboxCounters,
    SandboxGift,
    SandboxOrganization,
    SandboxRecurringGift,
    SandboxTransaction,
    SandboxWebhook,
)
from integrations.sandbox.payloads import detail, text, validation_error
from integrations.sandbox.webhooks import Event, webhooks_deliver

SANDBOX_SUFFIX = "(Sandbox)"
TOKEN_PREFIX = "vsbx_"

Kind = SandboxTransaction.Kind
State = SandboxTransaction.State


# --- organisations and tokens -------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@transaction.atomic
def sandbox_org_create(
    *, name: str, time_zone: str = "America/Chicago", rate_limit: int = 5000, window_seconds: int = 3600
) -> tuple[SandboxOrganization, str]:
    """Create an organisation; returns it and its token, which is never retrievable again."""
    name = name.strip()
    if not name.endswith(SANDBOX_SUFFIX):
        name = f"{name} {SANDBOX_SUFFIX}"
    token = _new_token()
    organization = SandboxOrganization(
        name=name,
        time_zone=time_zone,
        rate_limit=rate_limit,
        window_seconds=window_seconds,
        token_hash=token_hash(token),
        token_last4=token[-4:],
    )
    organization.full_clean()
    organization.save()
    SandboxCounters.objects.create(organization=organization)
    return organization, token


def sandbox_org_token_regenerate(*, organization: SandboxOrganization) -> str:
    """Replace the token (the old one stops working at once); returns the new one."""
    token = _new_token()
    SandboxOrganization.objects.filter(pk=organization.pk).update(
        token_hash=token_hash(token), token_last4=token[-4:]
    )
    organization.token_hash, organization.token_last4 = token_hash(token), token[-4:]
    return token


def sandbox_org_authenticate(*, token: str) -> SandboxOrganization | None:
    """The organisation a bearer token belongs to (one indexed lookup), or None."""
    if not token:
        return None
    return SandboxOrganization.objects.filter(token_hash=token_hash(token)).first()


FAULT_FIELDS = (
    "error_rate",
    "error_statuses",
    "added_latency_ms",
    "timeout_rate",
    "timeout_seconds",
    "storm_until",
    "storm_retry_after",
)


def sandbox_faults_set(*, organization: SandboxOrganization, **knobs: Any) -> SandboxOrganization:
    """Change fault knobs (any of ``FAULT_FIELDS``); validated like the admin form."""
    unknown = set(knobs) - set(FAULT_FIELDS)
    if unknown:
        raise ValueError(f"Unknown fault knobs: {sorted(unknown)}")
    for name, value in knobs.items():
        setattr(organization, name, value)
    organization.full_clean()
    statuses = organization.error_status_list
    if any(s < 400 or s > 599 for s in statuses):
        raise ValueError("error_statuses must be HTTP error statuses (400-599).")
    organization.save(update_fields=list(knobs))
    return organization


def sandbox_faults_reset(*, organization: SandboxOrganization) -> SandboxOrganization:
    return sandbox_faults_set(
        organization=organization,
        error_rate=0.0,
        added_latency_ms=0,
        timeout_rate=0.0,
        storm_until=None,
    )


def sandbox_storm_start(*, organization: SandboxOrganization, seconds: int, retry_after: int) -> None:
    """Answer every request with 429 + ``Retry-After: retry_after`` for the next ``seconds``."""
    sandbox_faults_set(
        organization=organization,
        storm_until=timezone.now() + dt.timedelta(seconds=seconds),
        storm_retry_after=retry_after,
    )


# --- the holding state --------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """One item for the holding state: its idempotency key and its normalised payload."""

    source: str
    external_id: str
    payload: dict[str, Any]


def contact_transaction_validate(item: Any, *, reference_source: str = "", prefix: str = "") -> Submission:
    """Check one Contact Transaction item; raises ``ApiError`` with every problem found."""
    if not isinstance(item, dict):
        raise validation_error([detail(prefix or "body", "INVALID", "A contact must be an object.")])
    errors: list[dict[str, Any]] = []
    source = text(item.get("referenceSource")) or reference_source
    reference_id = text(item.get("referenceId"))
    if not source:
        errors.append(detail(f"{prefix}referenceSource", "REQUIRED", "referenceSource is required."))
    if not reference_id:
        errors.append(detail(f"{prefix}referenceId", "REQUIRED", "referenceId is required."))
    email = text(item.get("email"))
    if email and "@" not in email:
        errors.append(detail(f"{prefix}email", "INVALID", "email is not an e-mail address."))
    if not (text(item.get("name")) or text(item.get("lastName")) or text(item.get("firstName")) or email):
        errors.append(detail(f"{prefix}name", "REQUIRED", "A name, firstName/lastName or email is required."))
    if errors:
        raise validation_error(errors)
    return Submission(source, reference_id, {**item, "referenceSource": source, "referenceId": reference_id})


def gift_transaction_validate(
    item: Any, *, defaults: dict[str, Any] | None = None, prefix: str = ""
) -> Submission:
    """Check one Gift Transaction item (batch defaults fill the gaps); raises ``ApiError``."""
    if not isinstance(item, dict):
        raise validation_error([detail(prefix or "body", "INVALID", "A transaction must be an object.")])
    item = {**{k: v for k, v in (defaults or {}).items() if v not in (None, "")}, **item}
    errors: list[dict[str, Any]] = []
    source = text(item.get("transactionSource"))
    transaction_id = text(item.get("transactionId"))
    if not source:
        errors.append(detail(f"{prefix}transactionSource", "REQUIRED", "transactionSource is required."))
    if not transaction_id:
        errors.append(detail(f"{prefix}transactionId", "REQUIRED", "transactionId is required."))
    amount = payloads.parse_amount(item.get("amount"), f"{prefix}amount", errors, positive=True)
    gift_date = payloads.parse_day(item.get("giftDate"), f"{prefix}giftDate", errors)
    contact = item.get("contact")
    if not isinstance(contact, dict) or not (
        text(contact.get("referenceId")) or text(contact.get("email")) or contact.get("id")
    ):
        errors.append(
            detail(f"{prefix}contact", "REQUIRED", "contact with referenceId, email or id is required.")
        )
    designations = payloads.parse_designations(item, amount, prefix, errors)
    if errors:
        raise validation_error(errors)
    normalised = {
        **item,
        "transactionSource": source,
        "transactionId": transaction_id,
        "amount": str(amount),
        "giftDate": gift_date.isoformat(),
        "giftType": text(item.get("giftType")) or "Cash",
        "currencyCode": text(item.get("currencyCode")) or "USD",
        "batch": text(item.get("batch")),
        "designations": designations,
    }
    normalised.pop("giftDesignations", None)
    return Submission(source, transaction_id, normalised)


def reversal_validate(*, organization: SandboxOrganization, body: Any) -> Submission:
    """A ReversingTransaction must name an existing, not yet reversed, non-reversal gift."""
    if not isinstance(body, dict):
        raise validation_error([detail("body", "INVALID", "The body must be an object.")])
    errors: list[dict[str, Any]] = []
    gift_id = body.get("reversedGiftId")
    gift_date = payloads.parse_day(body.get("giftDate"), "giftDate", errors)
    original = None
    if isinstance(gift_id, int) and not isinstance(gift_id, bool):
        original = SandboxGift.objects.filter(organization=organization, pk=gift_id).first()
    if original is None:
        errors.append(
            detail("reversedGiftId", "NOT_FOUND", "reversedGiftId must be a gift of this organisation.")
        )
    elif original.reversed_gift_id is not None:
        errors.append(detail("reversedGiftId", "INVALID", "A reversing gift cannot be reversed."))
    if errors:
        raise validation_error(errors)
    payload = {"reversedGiftId": gift_id, "giftDate": gift_date.isoformat(), "notes": text(body.get("notes"))}
    return Submission("", str(gift_id), payload)


def sandbox_transactions_submit(
    *, organization: SandboxOrganization, kind: str, submissions: list[Submission]
) -> tuple[int, int]:
    """Put validated items in the holding state; returns (received, duplicates).

    A key seen before (or twice in one call) never makes a second row: it bumps
    ``submit_count``. A resubmitted contact replaces the held payload and goes back to held,
    so the next batch applies the newer data; gifts and reversals keep their first payload.
    The caller counts the returned numbers (the API view adds them to the request's counters).
    """
    latest: dict[tuple[str, str], Submission] = {}
    occurrences: Counter[tuple[str, str]] = Counter()
    for sub in submissions:
        key = (sub.source, sub.external_id)
        occurrences[key] += 1
        latest.setdefault(key, sub)
        if kind == Kind.CONTACT:
            latest[key] = sub
    with transaction.atomic():
        existing = {
            (row.source, row.external_id)
            for row in SandboxTransaction.objects.filter(
                organization=organization,
                kind=kind,
                source__in={k[0] for k in latest},
                external_id__in={k[1] for k in latest},
            ).only("source", "external_id")
        }
        new_keys = [k for k in latest if k not in existing]
        try:
            with transaction.atomic():
                SandboxTransaction.objects.bulk_create(
                    [
                        SandboxTransaction(
                            organization=organization,
                            kind=kind,
                            source=k[0],
                            external_id=k[1],
                            payload=latest[k].payload,
                        )
                        for k in new_keys
                    ]
                )
        except IntegrityError:
            # Another process stored some of these keys since we looked: one at a time instead.
            new_keys = [k for k in new_keys if _create_one(organization, kind, latest[k])]
        duplicates = sum(occurrences.values()) - len(new_keys)
        for key, count in occurrences.items():
            repeats = count - (1 if key in new_keys else 0)
            if repeats:
                _record_resubmission(organization, kind, latest[key], repeats)
    return len(submissions), duplicates


def _create_one(organization: SandboxOrganization, kind: str, sub: Submission) -> bool:
    try:
        with transaction.atomic():
            SandboxTransaction.objects.create(
                organization=organization,
                kind=kind,
                source=sub.source,
                external_id=sub.external_id,
                payload=sub.payload,
            )
    except IntegrityError:
        return False
    return True


def _record_resubmission(organization: SandboxOrganization, kind: str, sub: Submission, repeats: int) -> None:
    changes: dict[str, Any] = {"submit_count": F("submit_count") + repeats}
    if kind == Kind.CONTACT:
        changes.update(payload=sub.payload, state=State.HELD, processed_at=None)
    SandboxTransaction.objects.filter(
        organization=organization, kind=kind, source=sub.source, external_id=sub.external_id
    ).update(**changes)


# --- contacts -----------------------------------------------------------------------------


def _references(contact: SandboxContact) -> list[tuple[str, str]]:
    # .all() so a prefetch (query results) is used instead of one query per contact.
    return [(r.source, r.reference_id) for r in sorted(contact.references.all(), key=lambda r: r.pk)]


def contact_resource(contact: SandboxContact) -> dict[str, Any]:
    return payloads.contact_json(contact, _references(contact))


def _survivor(contact: SandboxContact | None) -> SandboxContact | None:
    seen = set()
    while contact is not None and contact.merged_into_id is not None and contact.pk not in seen:
        seen.add(contact.pk)
        contact = contact.merged_into
    return contact


def contact_by_reference(
    *, organization: SandboxOrganization, source: str, reference_id: str
) -> SandboxContact | None:
    ref = (
        SandboxContactReference.objects.filter(
            organization=organization, source=source, reference_id=reference_id
        )
        .select_related("contact")
        .first()
    )
    return ref.contact if ref else None


def contact_by_email(*, organization: SandboxOrganization, email: str) -> SandboxContact | None:
    """The oldest live contact with this primary e-mail (exact, case-insensitive)."""
    if not email:
        return None
    return (
        SandboxContact.objects.filter(
            organization=organization, email=email.strip().lower(), merged_into=None
        )
        .order_by("archived", "pk")
        .first()
    )


def _methods(email: str, phone: str, email_type: str = "", phone_type: str = "") -> list[dict[str, Any]]:
    methods = []
    if email:
        methods.append(
            {"type": email_type or "Home Email", "value": email, "isOptedIn": True, "isPrimary": True}
        )
    if phone:
        methods.append(
            {"type": phone_type or "Mobile Phone", "value": phone, "isOptedIn": False, "isPrimary": True}
        )
    return methods


def _flat_address(p: dict[str, Any]) -> dict[str, Any]:
    keys = ("address1", "address2", "city", "state", "postal", "country")
    return {k: text(p.get(k)) for k in keys if text(p.get(k))}


def _add_reference(organization: SandboxOrganization, contact: SandboxContact, source: str, ref: str) -> None:
    if source and ref:
        SandboxContactReference.objects.get_or_create(
            organization=organization, source=source, reference_id=ref, defaults={"contact": contact}
        )


def _apply_contact_transaction(
    organization: SandboxOrganization, payload: dict[str, Any], now: dt.datetime
) -> tuple[SandboxContact, str]:
    source, reference_id = payload["referenceSource"], payload["referenceId"]
    email = text(payload.get("email")).lower()
    first, last = text(payload.get("firstName")), text(payload.get("lastName"))
    name = text(payload.get("name")) or f"{first} {last}".strip() or email
    address = _flat_address(payload)
    contact = _survivor(
        contact_by_reference(organization=organization, source=source, reference_id=reference_id)
    ) or contact_by_email(organization=organization, email=email)
    if contact is None:
        contact = SandboxContact.objects.create(
            organization=organization,
            contact_type=text(payload.get("contactType")) or "Household",
            name=name,
            individuals=[
                {
                    "firstName": first,
                    "lastName": last,
                    "isPrimary": True,
                    "contactMethods": _methods(
                        email,
                        text(payload.get("phone")),
                        text(payload.get("emailType")),
                        text(payload.get("phoneType")),
                    ),
                }
            ],
            email=email,
            address=address,
            created_at=now,
            modified_at=now,
        )
        _add_reference(organization, contact, source, reference_id)
        counters_add(organization_id=organization.pk, contacts_created=1)
        return contact, "contactCreate"
    if text(payload.get("name")) or first or last:
        contact.name = name
    people = contact.individuals or [{"isPrimary": True, "contactMethods": []}]
    primary = people[0]
    if first:
        primary["firstName"] = first
    if last:
        primary["lastName"] = last
    if email and email != contact.email:
        others = [m for m in primary.get("contactMethods", []) if "email" not in m.get("type", "").lower()]
        primary["contactMethods"] = [*_methods(email, "", text(payload.get("emailType"))), *others]
        contact.email = email
    contact.individuals = people
    if address:
        contact.address = address
    if payload.get("contactType"):
        contact.contact_type = text(payload["contactType"])
    contact.modified_at = now
    contact.save()
    _add_reference(organization, contact, source, reference_id)
    return contact, "contactUpdate"


def _nested_contact_fields(body: dict[str, Any]) -> dict[str, Any]:
    """Model fields from the nested direct-Contact body (only what was sent)."""
    fields: dict[str, Any] = {}
    if "contactType" in body:
        fields["contact_type"] = text(body["contactType"]) or "Household"
    if "name" in body:
        fields["name"] = text(body["name"])
    if "isArchived" in body:
        fields["archived"] = bool(body["isArchived"])
    if isinstance(body.get("contactIndividuals"), list):
        people = []
        for person in body["contactIndividuals"]:
            if isinstance(person, dict):
                methods = [
                    {
                        "type": text(m.get("type")),
                        "value": text(m.get("value")),
                        "isOptedIn": bool(m.get("isOptedIn")),
                        "isPrimary": bool(m.get("isPrimary")),
                    }
                    for m in person.get("contactMethods") or []
                    if isinstance(m, dict)
                ]
                people.append(
                    {
                        "firstName": text(person.get("firstName")),
                        "lastName": text(person.get("lastName")),
                        "isPrimary": bool(person.get("isPrimary", not people)),
                        "contactMethods": methods,
                    }
                )
        fields["individuals"] = people
        emails = [
            m["value"]
            for p in people
            for m in sorted(p["contactMethods"], key=lambda m: not m["isPrimary"])
            if "email" in m["type"].lower() and m["value"]
        ]
        fields["email"] = emails[0].lower() if emails else ""
    addresses = body.get("contactAddresses")
    if isinstance(addresses, list) and addresses:
        primary = next((a for a in addresses if isinstance(a, dict) and a.get("isPrimary")), addresses[0])
        if isinstance(primary, dict):
            fields["address"] = {
                "address1": text(primary.get("address1")),
                "address2": text(primary.get("address2")),
                "city": text(primary.get("city")),
                "state": text(primary.get("stateCode") or primary.get("state")),
                "postal": text(primary.get("postal")),
                "country": text(primary.get("countryCode") or primary.get("country")),
            }
    return fields


def sandbox_contact_create(*, organization: SandboxOrganization, body: dict[str, Any]) -> SandboxContact:
    """Direct create (``POST /api/Contact``): no matching, no dedupe; fires contactCreate now."""
    fields = _nested_contact_fields(body)
    refs = [(text(body.get("referenceSource")), text(body.get("referenceId")))]
    refs += [
        (text(r.get("source")), text(r.get("id")))
        for r in body.get("contactReferences") or []
        if isinstance(r, dict)
    ]
    refs = [r for r in refs if r[0] and r[1]]
    if not fields.get("name"):
        person = (fields.get("individuals") or [{}])[0]
        fields["name"] = f"{person.get('firstName', '')} {person.get('lastName', '')}".strip()
    if not fields["name"]:
        raise validation_error([detail("name", "REQUIRED", "name or a contact individual is required.")])
    now = timezone.now()
    try:
        with transaction.atomic():
            contact = SandboxContact.objects.create(
                organization=organization, created_at=now, modified_at=now, **fields
            )
            for source, ref in refs:
                SandboxContactReference.objects.create(
                    organization=organization, contact=contact, source=source, reference_id=ref
                )
    except IntegrityError as exc:
        raise validation_error(
            [detail("contactReferences", "DUPLICATE", "A reference is already used by another contact.")]
        ) from exc
    counters_add(organization_id=organization.pk, contacts_created=1)
    webhooks_deliver(organization=organization, events=[("contactCreate", contact_resource(contact))])
    return contact


def sandbox_contact_edit(
    *, organization: SandboxOrganization, contact_id: int, changes: dict[str, Any]
) -> SandboxContact:
    """An edit made in Virtuous (``PUT /api/Contact/{id}`` or "the UI"); fires contactUpdate.

    Behaves as a patch, like the live API: only the fields sent change.
    """
    fields = _nested_contact_fields(changes)
    with transaction.atomic():
        contact = (
            SandboxContact.objects.select_for_update()
            .filter(organization=organization, pk=contact_id)
            .first()
        )
        if contact is None:
            raise payloads.not_found("Contact")
        for name, value in fields.items():
            setattr(contact, name, value)
        contact.modified_at = timezone.now()
        contact.save()
    webhooks_deliver(organization=organization, events=[("contactUpdate", contact_resource(contact))])
    return contact


def sandbox_contacts_merge(
    *, organization: SandboxOrganization, survivor_id: int, merged_id: int
) -> SandboxContact:
    """An admin merge in Virtuous: references and gifts move to the survivor; the merged-away
    record keeps ``mergedIntoContactId`` and a contactUpdate fires for it (and the survivor)."""
    if survivor_id == merged_id:
        raise ValueError("A contact cannot be merged into itself.")
    now = timezone.now()
    with transaction.atomic():
        contacts = {
            c.pk: c
            for c in SandboxContact.objects.select_for_update().filter(
                organization=organization, pk__in=[survivor_id, merged_id]
            )
        }
        if len(contacts) != 2:
            raise payloads.not_found("Contact")
        survivor, merged = contacts[survivor_id], contacts[merged_id]
        SandboxContactReference.objects.filter(contact=merged).update(contact=survivor)
        SandboxGift.objects.filter(contact=merged).update(contact=survivor, modified_at=now)
        merged.merged_into = survivor
        merged.archived = True
        merged.modified_at = now
        merged.save()
        if not survivor.email and merged.email:
            survivor.email = merged.email
        survivor.modified_at = now
        survivor.save()
    webhooks_deliver(
        organization=organization,
        events=[("contactUpdate", contact_resource(merged)), ("contactUpdate", contact_resource(survivor))],
    )
    return merged


# --- gifts --------------------------------------------------------------------------------


def _gift_contact(organization: SandboxOrganization, payload: dict[str, Any]) -> SandboxContact | None:
    """Match the gift's contact block: id, then reference (with the transaction source), then e-mail."""
    block = payload.get("contact") or {}
    contact = None
    if isinstance(block.get("id"), int):
        contact = SandboxContact.objects.filter(organization=organization, pk=block["id"]).first()
    if contact is None and text(block.get("referenceId")):
        contact = contact_by_reference(
            organization=organization,
            source=text(block.get("referenceSource")) or payload["transactionSource"],
            reference_id=text(block["referenceId"]),
        )
    contact = _survivor(contact)
    if contact is None:
        contact = contact_by_email(organization=organization, email=text(block.get("email")))
    return contact


def sandbox_gift_create(
    *,
    organization: SandboxOrganization,
    contact_id: int,
    amount: Decimal,
    gift_date: dt.date,
    gift_type: str = "Cash",
    designations: list[dict[str, Any]] | None = None,
    batch: str = "",
    transaction_source: str = "",
    transaction_id: str = "",
    notes: str = "",
) -> SandboxGift:
    """A gift entered directly in Virtuous (not through a transaction); fires giftCreate now."""
    contact = SandboxContact.objects.filter(organization=organization, pk=contact_id).first()
    if contact is None:
        raise payloads.not_found("Contact")
    now = timezone.now()
    gift = SandboxGift.objects.create(
        organization=organization,
        contact=contact,
        amount=amount,
        gift_date=gift_date,
        gift_type=gift_type,
        designations=designations or [],
        batch=batch,
        transaction_source=transaction_source,
        transaction_id=transaction_id,
        notes=notes,
        created_at=now,
        modified_at=now,
    )
    counters_add(organization_id=organization.pk, gifts_created=1)
    webhooks_deliver(organization=organization, events=[("giftCreate", payloads.gift_json(gift))])
    return gift


def _create_gift_from_transaction(
    organization: SandboxOrganization, payload: dict[str, Any], contact: SandboxContact, now: dt.datetime
) -> SandboxGift:
    return SandboxGift.objects.create(
        organization=organization,
        transaction_source=payload["transactionSource"],
        transaction_id=payload["transactionId"],
        contact=contact,
        amount=Decimal(payload["amount"]),
        gift_date=dt.date.fromisoformat(payload["giftDate"]),
        gift_type=payload["giftType"],
        currency=payload["currencyCode"][:3],
        batch=payload["batch"],
        notes=text(payload.get("notes")),
        designations=payload["designations"],
        recurring_gift_transaction_id=text(payload.get("recurringGiftTransactionId")),
        created_at=now,
        modified_at=now,
    )


def _create_reversal(
    organization: SandboxOrganization, payload: dict[str, Any], now: dt.datetime
) -> SandboxGift:
    original = SandboxGift.objects.get(organization=organization, pk=payload["reversedGiftId"])
    return SandboxGift.objects.create(
        organization=organization,
        contact_id=original.contact_id,
        amount=-original.amount,
        gift_date=dt.date.fromisoformat(payload["giftDate"]),
        gift_type="ReversingTransaction",
        currency=original.currency,
        batch=original.batch,
        notes=payload["notes"],
        designations=[
            {**d, "amountDesignated": str(-Decimal(d["amountDesignated"]))}
            for d in original.designations
            if d.get("amountDesignated") is not None
        ],
        reversed_gift=original,
        created_at=now,
        modified_at=now,
    )


# --- the nightly batch --------------------------------------------------------------------


def sandbox_batch_run(*, organization: SandboxOrganization | None = None) -> dict[str, int]:
    """Process the holding state of one organisation (or all): the "nightly batch".

    Contacts first (match by reference, then e-mail; update or create), then held gifts (matched →
    gift + giftCreate, unmatched → needs_update), then reversals. A gift in needs-update stays
    there, however many batches run and whatever contacts appear later: in Virtuous a person
    resolves it in the Imports UI (spec 4.6), here ``sandbox_needs_update_resolve``.
    Each item is claimed with a conditional UPDATE, so two runs at once never process one twice.
    """
    organizations = [organization] if organization else list(SandboxOrganization.objects.all())
    totals: Counter[str] = Counter()
    for org in organizations:
        totals.update(_batch_run_one(org))
    keys = ("contacts_created", "contacts_updated", "gifts_created", "needs_update", "reversals_created")
    return {k: totals[k] for k in keys} | {
        "webhooks_sent": totals["sent"],
        "webhooks_failed": totals["failed"],
    }


def _batch_run_one(organization: SandboxOrganization) -> Counter[str]:
    totals: Counter[str] = Counter()
    plan = (
        (Kind.CONTACT, [State.HELD]),
        (Kind.GIFT, [State.HELD]),
        (Kind.REVERSAL, [State.HELD]),
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
            contact, event = _apply_contact_transaction(organization, payload, now)
            SandboxTransaction.objects.filter(pk=claimed.pk).update(result_id=contact.pk)
            outcome = "contacts_created" if event == "contactCreate" else "contacts_updated"
            return outcome, [(event, contact_resource(contact))]
        if kind == Kind.GIFT:
            existing = SandboxGift.objects.filter(
                organization=organization,
                transaction_source=payload["transactionSource"],
                transaction_id=payload["transactionId"],
            ).first()
            if existing is not None:
                SandboxTransaction.objects.filter(pk=claimed.pk).update(result_id=existing.pk)
                return "", []
            contact = _gift_contact(organization, payload)
            if contact is None:
                SandboxTransaction.objects.filter(pk=claimed.pk).update(
                    state=State.NEEDS_UPDATE, processed_at=None
                )
                return ("needs_update" if claimed.state == State.HELD else ""), []
            gift = _create_gift_from_transaction(organization, payload, contact, now)
        else:
            gift = _create_reversal(organization, payload, now)
        SandboxTransaction.objects.filter(pk=claimed.pk).update(result_id=gift.pk)
        counters_add(organization_id=organization.pk, gifts_created=1)
    outcome = "gifts_created" if kind == Kind.GIFT else "reversals_created"
    return outcome, [("giftCreate", payloads.gift_json(gift))]


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


# --- recurring gifts ----------------------------------------------------------------------


def sandbox_recurring_create(
    *, organization: SandboxOrganization, body: Any
) -> tuple[SandboxRecurringGift, bool]:
    """Direct create on a known ``contactId``; returns (schedule, duplicate).

    A repeated ``transactionSource``+``transactionId`` returns the schedule created the first
    time instead of a second one.
    """
    if not isinstance(body, dict):
        raise validation_error([detail("body", "INVALID", "The body must be an object.")])
    errors: list[dict[str, Any]] = []
    contact_id = body.get("contactId")
    contact = None
    if isinstance(contact_id, int) and not isinstance(contact_id, bool):
        contact = SandboxContact.objects.filter(organization=organization, pk=contact_id).first()
    if contact is None:
        errors.append(detail("contactId", "NOT_FOUND", "contactId must be a contact of this organisation."))
    amount = payloads.parse_amount(body.get("amount"), "amount", errors, positive=True)
    start = payloads.parse_day(body.get("startDate"), "startDate", errors)
    next_payment = None
    if body.get("nextExpectedPaymentDate"):
        next_payment = payloads.parse_day(body["nextExpectedPaymentDate"], "nextExpectedPaymentDate", errors)
    designations = payloads.parse_designations(body, amount, "", errors)
    if errors:
        raise validation_error(errors)
    source, external_id = text(body.get("transactionSource")), text(body.get("transactionId"))
    with transaction.atomic():
        if external_id:
            marker, created = SandboxTransaction.objects.get_or_create(
                organization=organization,
                kind=Kind.RECURRING,
                source=source,
                external_id=external_id,
                defaults={"payload": body, "state": State.PROCESSED, "processed_at": timezone.now()},
            )
            if not created:
                SandboxTransaction.objects.filter(pk=marker.pk).update(submit_count=marker.submit_count + 1)
                return SandboxRecurringGift.objects.get(organization=organization, pk=marker.result_id), True
        now = timezone.now()
        recurring = SandboxRecurringGift.objects.create(
            organization=organization,
            contact=contact,
            transaction_source=source,
            transaction_id=external_id,
            amount=amount,
            frequency=text(body.get("frequency")) or "Monthly",
            start_date=start,
            next_expected_payment_date=next_payment,
            designations=designations,
            created_at=now,
            modified_at=now,
        )
        if external_id:
            SandboxTransaction.objects.filter(pk=marker.pk).update(result_id=recurring.pk)
    return recurring, False


def recurring_get(*, organization: SandboxOrganization, recurring_id: int) -> SandboxRecurringGift:
    recurring = SandboxRecurringGift.objects.filter(organization=organization, pk=recurring_id).first()
    if recurring is None:
        raise payloads.not_found("Recurring gift")
    return recurring


def sandbox_recurring_cancel(
    *, organization: SandboxOrganization, recurring_id: int, reason: str = ""
) -> SandboxRecurringGift:
    """Cancel for good (sets ``cancelDateTimeUtc`` once; cancelling again changes nothing)."""
    now = timezone.now()
    SandboxRecurringGift.objects.filter(organization=organization, pk=recurring_id, cancel_at=None).update(
        cancel_at=now, status="Cancelled", cancel_reason=reason[:500], modified_at=now
    )
    return recurring_get(organization=organization, recurring_id=recurring_id)


# --- webhook subscriptions ----------------------------------------------------------------


def _webhook_fields(body: Any, *, require_secret: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise validation_error([detail("body", "INVALID", "The body must be an object.")])
    errors = []
    url = text(body.get("payloadUrl"))
    if not url.startswith(("https://", "http://")):
        errors.append(detail("payloadUrl", "INVALID", "payloadUrl must be an http(s) URL."))
    secret = text(body.get("secret"))
    if require_secret and not secret:
        errors.append(detail("secret", "REQUIRED", "secret is required."))
    if errors:
        raise validation_error(errors)
    fields: dict[str, Any] = {
        "payload_url": url,
        "active": bool(body.get("active", True)),
        "toggles": {name: bool(body.get(name, False)) for name in WEBHOOK_TOGGLES},
    }
    if secret:
        fields["secret"] = secret
    return fields


def sandbox_webhook_create(*, organization: SandboxOrganization, body: Any) -> SandboxWebhook:
    """Subscribe; omitted toggles are off."""
    return SandboxWebhook.objects.create(
        organization=organization, **_webhook_fields(body, require_secret=True)
    )


def sandbox_webhook_get(*, organization: SandboxOrganization, webhook_id: int) -> SandboxWebhook:
    hook = SandboxWebhook.objects.filter(organization=organization, pk=webhook_id).first()
    if hook is None:
        raise payloads.not_found("Webhook")
    return hook


def sandbox_webhook_update(
    *, organization: SandboxOrganization, webhook_id: int, body: Any
) -> SandboxWebhook:
    """Full replace: toggles not sent are switched off; the secret changes only when sent."""
    hook = sandbox_webhook_get(organization=organization, webhook_id=webhook_id)
    for name, value in _webhook_fields(body, require_secret=False).items():
        setattr(hook, name, value)
    hook.save()
    return hook


def sandbox_webhook_set_active(
    *, organization: SandboxOrganization, webhook_id: int, active: bool
) -> SandboxWebhook:
    """Pause or resume; events while paused are dropped, not queued (as in Virtuous)."""
    hook = sandbox_webhook_get(organization=organization, webhook_id=webhook_id)
    hook.active = active
    hook.save(update_fields=["active", "modified_at"])
    return hook


def sandbox_webhook_delete(*, organization: SandboxOrganization, webhook_id: int) -> None:
    deleted, _ = SandboxWebhook.objects.filter(organization=organization, pk=webhook_id).delete()
    if not deleted:
        raise payloads.not_found("Webhook")


def gift_get(*, organization: SandboxOrganization, **lookup: Any) -> SandboxGift:
    gift = SandboxGift.objects.filter(organization=organization, **lookup).first()
    if gift is None:
        raise payloads.not_found("Gift")
    return gift


def contact_get(*, organization: SandboxOrganization, contact_id: int) -> SandboxContact:
    contact = SandboxContact.objects.filter(organization=organization, pk=contact_id).first()
    if contact is None:
        raise payloads.not_found("Contact")
    return contact
