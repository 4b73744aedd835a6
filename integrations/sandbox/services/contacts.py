"""Sandbox contacts: references, lookups, Contact Transactions applied, direct creates, edits, merges."""

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from integrations.sandbox import payloads
from integrations.sandbox.limits import counters_add
from integrations.sandbox.models import (
    SandboxContact,
    SandboxContactReference,
    SandboxGift,
    SandboxOrganization,
)
from integrations.sandbox.payloads import detail, text, validation_error
from integrations.sandbox.webhooks import webhooks_deliver

# --- contacts -----------------------------------------------------------------------------


def _references(contact: SandboxContact) -> list[tuple[str, str]]:
    # .all() so a prefetch (query results) is used instead of one query per contact.
    return [(r.source, r.reference_id) for r in sorted(contact.references.all(), key=lambda r: r.pk)]


def contact_resource(contact: SandboxContact) -> dict[str, Any]:
    return payloads.contact_json(contact, _references(contact))


def contact_survivor(contact: SandboxContact | None) -> SandboxContact | None:
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


def contact_transaction_apply(
    organization: SandboxOrganization, payload: dict[str, Any], now: dt.datetime
) -> tuple[SandboxContact, str]:
    source, reference_id = payload["referenceSource"], payload["referenceId"]
    email = text(payload.get("email")).lower()
    first, last = text(payload.get("firstName")), text(payload.get("lastName"))
    name = text(payload.get("name")) or f"{first} {last}".strip() or email
    address = _flat_address(payload)
    contact = contact_survivor(
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


def contact_get(*, organization: SandboxOrganization, contact_id: int) -> SandboxContact:
    contact = SandboxContact.objects.filter(organization=organization, pk=contact_id).first()
    if contact is None:
        raise payloads.not_found("Contact")
    return contact
