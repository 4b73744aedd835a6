"""Two-way sync: the shared fields of a contact, as each side has them, and what to write back.

A contact is linked to a partner platform (a provider whose spec has a partner side) by a
SyncRecord keyed on the partner's id. Both directions compare the same small *shared view* of a contact, computed
the same way from a Virtuous contact and from the Contact Transaction a partner change maps to:

    {"firstName", "lastName", "email", "optedOut", "tags"}

``tags`` are the partner's own tags as Virtuous carries them, with the partner side's member tag
prefix ("<prefix>: vip" is the partner's tag "vip"); ``None`` when the side did not say (some
webhooks carry no member tags). ``optedOut`` is the partner side's opt-out tag ("<prefix>: Unsubscribed").
Only these fields ever travel back to a partner; e-mail identifies the member and is never
rewritten there, and nobody is re-subscribed from the CRM side (consent comes from the person).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from integrations.common.partners import PartnerSide
from integrations.models import Connection
from integrations.registry import partner_get, partner_keys
from integrations.types import Operation, OutboundRequest
from integrations.virtuous.records import contact_email, contact_primary_individual
from tenants.models import Tenant

# How one partner platform names its tags and opt-outs inside Virtuous: its provider's partner side.
TwoWayTarget = PartnerSide
SHARED_FIELDS = ("firstName", "lastName", "optedOut", "tags")
VIEW_FIELDS = frozenset({"firstName", "lastName", "email", "optedOut", "tags"})
# Under the per-field ownership policy, who owns each shared field unless the connection says.
DEFAULT_OWNERS = {"firstName": "virtuous", "lastName": "virtuous", "optedOut": "partner", "tags": "partner"}


def target_for(provider: str) -> TwoWayTarget | None:
    """The partner side of ``provider`` (from the registry); None when it is not a two-way partner."""
    return partner_get(provider)


def two_way_connections(*, tenant: Tenant) -> dict[str, Connection]:
    """The tenant's active two-way partner connections by the source name they write with."""
    partners = partner_keys()
    return {
        c.source_name: c
        for c in Connection.objects.filter(tenant=tenant, provider__in=partners, is_active=True).order_by(
            "pk"
        )
    }


def _tag_names(tags: Any) -> list[str]:
    if isinstance(tags, str):
        return [t.strip() for t in tags.split(";") if t.strip()]
    names = []
    for tag in tags or []:
        name = tag.get("tagName") or tag.get("name") if isinstance(tag, dict) else tag
        if name and str(name).strip():
            names.append(str(name).strip())
    return names


def _view(first: Any, last: Any, email: Any, tags: list[str], target: TwoWayTarget) -> dict[str, Any]:
    member = f"{target.member_tag_prefix}: "
    opt_outs = {f"{target.opt_out_prefix}: {reason}" for reason in target.opt_out_reasons}
    own = sorted({t[len(member) :] for t in tags if t.startswith(member)})
    return {
        "firstName": str(first or "").strip(),
        "lastName": str(last or "").strip(),
        "email": str(email or "").strip().lower(),
        "optedOut": any(t in opt_outs for t in tags),
        "tags": own or None,
    }


def virtuous_carried(record: dict[str, Any]) -> frozenset[str]:
    """The shared fields a Virtuous contact payload actually carries.

    Webhook shapes are unpublished and vary (spec section 3): the observed deliveries have no
    ``contactReferences`` or ``modifiedDateTimeUtc``, an individual may come without
    ``contactMethods``, an organisation without any individual. A field the payload does not carry
    (absent or null) is unknown, never "changed to empty"."""
    person = contact_primary_individual(record)
    carried = {name for name in ("firstName", "lastName") if person.get(name) is not None}
    if person.get("contactMethods") is not None or record.get("email") is not None:
        carried.add("email")
    if record.get("tags") is not None:
        carried |= {"tags", "optedOut"}
    return frozenset(carried)


def virtuous_view(
    record: dict[str, Any], target: TwoWayTarget, *, fallback: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The shared view of a Virtuous contact. A tag list Virtuous sends is its whole list, so an
    empty one means "no partner tags" (``[]``). A field the payload does not carry takes
    ``fallback``'s value (what we already know), so it never reads as a difference."""
    person = contact_primary_individual(record)
    view = _view(
        person.get("firstName"),
        person.get("lastName"),
        contact_email(record),
        _tag_names(record.get("tags")),
        target,
    )
    view["tags"] = view["tags"] or []
    if fallback:
        for name in VIEW_FIELDS - virtuous_carried(record):
            if fallback.get(name) is not None:
                view[name] = fallback[name]
    return view


def partner_view(payload: dict[str, Any], target: TwoWayTarget) -> dict[str, Any]:
    """The shared view of a partner change, from the Contact Transaction it maps to, plus ``rest``:
    a hash of everything else in it (phone, address, audience tags), so a change outside the
    shared fields is never mistaken for an echo."""
    tags = _tag_names(payload.get("tags"))
    view = _view(payload.get("firstName"), payload.get("lastName"), payload.get("email"), tags, target)
    member = f"{target.member_tag_prefix}: "
    opt_outs = {f"{target.opt_out_prefix}: {reason}" for reason in target.opt_out_reasons}
    rest = {k: v for k, v in payload.items() if k not in ("firstName", "lastName", "email", "tags")}
    rest["tags"] = sorted({t for t in tags if not t.startswith(member) and t not in opt_outs})
    view["rest"] = hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return view


def partner_echo(view: dict[str, Any], snapshot: dict[str, Any]) -> bool:
    """A partner capture that shows exactly the state our last write left: our own write echoing."""
    return (
        snapshot.get("by") == "us"
        and same_shared(view, snapshot)
        and view.get("rest") == snapshot.get("rest")
    )


def snapshot_from_capture(view: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """The partner's state after a change it reported (its tags kept when it did not say)."""
    snapshot = {**view, "by": "partner"}
    if snapshot.get("tags") is None:
        snapshot["tags"] = previous.get("tags")
    return snapshot


def fingerprint(view: dict[str, Any]) -> str:
    """A stable hash of a shared view."""
    return hashlib.sha256(json.dumps(view, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def same_shared(view: dict[str, Any], known: dict[str, Any]) -> bool:
    """Whether a capture shows nothing new against what we know (tags compared only when both say)."""
    if not known:
        return False
    for name in ("firstName", "lastName", "email", "optedOut"):
        if view.get(name) != known.get(name):
            return False
    if view.get("tags") is not None and known.get("tags") is not None:
        return view["tags"] == known["tags"]
    return True


def owners_for(connection: Connection) -> dict[str, str]:
    """The per-field ownership map of a connection (its ``field_owners`` setting over the default)."""
    configured = (connection.settings or {}).get("field_owners") or {}
    return {**DEFAULT_OWNERS, **{k: v for k, v in configured.items() if k in DEFAULT_OWNERS}}


def partner_changes(
    *, virtuous: dict[str, Any], partner: dict[str, Any], fields: tuple[str, ...] = SHARED_FIELDS
) -> dict[str, Any]:
    """What to write to the partner so it shows Virtuous's values for ``fields``.

    Names change when they differ and Virtuous has one; an opt-out travels, a re-subscribe never
    does; tags are added when missing and removed only when the partner's tags are known.
    """
    changes: dict[str, Any] = {}
    for name in ("firstName", "lastName"):
        if name in fields and virtuous[name] and virtuous[name] != partner.get(name):
            changes[name] = virtuous[name]
    if "optedOut" in fields and virtuous["optedOut"] and not partner.get("optedOut"):
        changes["optedOut"] = True
    if "tags" in fields:
        theirs = set(virtuous.get("tags") or [])
        known = partner.get("tags")
        add = sorted(theirs - set(known or []))
        remove = sorted(set(known) - theirs) if known is not None else []
        if add:
            changes["tagsAdd"] = add
        if remove:
            changes["tagsRemove"] = remove
    return changes


def snapshot_after_write(snapshot: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The partner's shared view once ``changes`` are written, marked as set by us."""
    result = dict(snapshot)
    for name in ("firstName", "lastName", "optedOut"):
        if name in changes:
            result[name] = changes[name]
    if "tagsAdd" in changes or "tagsRemove" in changes:
        tags = set(result.get("tags") or []) | set(changes.get("tagsAdd", []))
        result["tags"] = sorted(tags - set(changes.get("tagsRemove", [])))
    result["by"] = "us"
    return result


def partner_update_request(
    *,
    connection: Connection,
    partner_id: str,
    changes: dict[str, Any],
    before: dict[str, Any],
    virtuous_id: str,
    version: str,
) -> OutboundRequest:
    """The queue item that writes ``changes`` to the partner (direction inbound)."""
    digest = hashlib.sha256(json.dumps(changes, sort_keys=True).encode()).hexdigest()[:16]
    return OutboundRequest(
        Operation.PARTNER_CONTACT_UPDATE,
        connection.source_name,
        partner_id,
        {
            "connection": str(connection.public_id),
            "provider": connection.provider,
            "changes": changes,
            "partnerBefore": before,
            "virtuousId": virtuous_id,
            "virtuousModified": version,
        },
        idempotency_key=(
            f"{Operation.PARTNER_CONTACT_UPDATE.value}:{connection.source_name}:{partner_id}:{version}:{digest}"
        ),
    )


def owned_only(payload: dict[str, Any], owners: dict[str, str]) -> dict[str, Any]:
    """A partner's Contact Transaction without the fields Virtuous owns (per-field ownership)."""
    dropped = {
        name for name, owner in owners.items() if owner == "virtuous" and name in ("firstName", "lastName")
    }
    return {k: v for k, v in payload.items() if k not in dropped}
