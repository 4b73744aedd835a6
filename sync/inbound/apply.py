"""Applying changes that Virtuous reports (webhooks and inbound polling): the two-way handler.

1. **Source identification first.** A gift whose ``transactionSource`` is one we write, or a
   contact event that confirms one of our contact writes, is ours: the outbound item is confirmed,
   the Virtuous id stored, and nothing else happens to the partner side. Confirmations happen in
   every rollout mode: they belong to the one-way push, which is live before inbound is.
2. **Per-record sync state** for contacts linked to a two-way partner (a provider with a
   partner side): a change that only repeats the shared fields Virtuous last had (our own write coming
   back, a webhook and a poll of one version) is dropped; a change older than the version we hold
   is stale and skipped; a real change puts the record in ``virtuous_pending`` for the tenant's
   cooldown (outbound writes for it wait) and, in ``full`` mode, queues the partner-side write.
   A change on both sides since the last sync is resolved by the tenant's conflict policy.
3. **Merges.** A contact carrying ``mergedIntoContactId`` repoints every stored reference to the
   survivor, then stops.

The tenant's ``inbound_mode`` gates everything but confirmations: ``off`` confirms only;
``observe`` records in the event's result what it would do and writes nothing; ``from_elsewhere``
keeps the mirror and the sync state; ``full`` also writes back to the partner.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations.common.parsing import to_datetime, to_int
from integrations.registry import partner_keys
from integrations.selectors import tenant_write_sources
from integrations.virtuous.inbound import VirtuousChange
from sync.models import Direction, Operation, Origin, OutboundItem, SyncRecord
from sync.outbound.confirm import outbound_confirm
from sync.outbound.enqueue import outbound_enqueue
from sync.two_way import mirror
from sync.two_way import state as two_way
from tenants.models import Tenant

Mode = Tenant.InboundMode
Policy = Tenant.ConflictPolicy
State = SyncRecord.SyncState
ON_THE_WAY = [OutboundItem.State.IN_FLIGHT, OutboundItem.State.SUBMITTED]


@dataclass
class _Run:
    """One change being handled: what the mode allows, and what was (or would be) done."""

    tenant: Tenant
    change: VirtuousChange
    origin: str
    now: dt.datetime
    actions: list[str] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return self.tenant.inbound_mode

    @property
    def local(self) -> bool:
        return self.mode in (Mode.FROM_ELSEWHERE, Mode.FULL)

    @property
    def partner(self) -> bool:
        return self.mode == Mode.FULL

    def did(self, text: str) -> None:
        self.actions.append(text if self.local else f"would: {text}")


def virtuous_change_apply(
    *, tenant: Tenant, change: VirtuousChange, origin: str = Origin.WEBHOOK, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Handle one Virtuous change. Returns a small result for the event row: where the change came
    from, how many of our writes it confirmed, and what was done (or, observing, would be done)."""
    run = _Run(tenant=tenant, change=change, origin=origin, now=now or timezone.now())
    with transaction.atomic():
        if change.resource == "gift":
            origin_name, confirmed = _gift(run)
        else:
            origin_name, confirmed = _contact(run)
    result: dict[str, Any] = {"origin": origin_name, "confirmed": confirmed}
    if run.mode != Mode.OFF:
        result |= {"mode": run.mode, "actions": run.actions}
    return result


def _stale(run: _Run, resource: str) -> bool:
    if mirror.mirror_is_stale(tenant=run.tenant, resource=resource, record=run.change.record):
        run.actions.append("stale: a newer version is held; skipped")
        return True
    return False


def _mirror(run: _Run, resource: str, *, deleted: bool = False) -> None:
    if run.mode == Mode.OFF:
        return
    if run.local:
        outcome = mirror.mirror_upsert(
            tenant=run.tenant, resource=resource, record=run.change.record, deleted=deleted
        )
        run.actions.append(f"mirror {outcome}")
    else:
        run.actions.append("would: mirror")


# --- gifts ----------------------------------------------------------------------------------


def _gift(run: _Run) -> tuple[str, int]:
    record = run.change.record
    source = record.get("transactionSource") or ""
    ours = source in tenant_write_sources(tenant=run.tenant) and bool(record.get("transactionId"))
    confirmed = 0
    if ours and run.change.event in ("giftCreate", "giftUpdate"):
        confirmed = outbound_confirm(
            tenant=run.tenant,
            kind="gift",
            external_source=source,
            external_id=str(record["transactionId"]),
            virtuous_id=str(record.get("id", "")),
        )
    if run.mode != Mode.OFF and not _stale(run, "gift"):
        _mirror(run, "gift", deleted=run.change.event == "giftDelete")
    return ("ours" if ours else "elsewhere"), confirmed


# --- contacts -------------------------------------------------------------------------------


def _contact(run: _Run) -> tuple[str, int]:
    record = run.change.record
    virtuous_id = str(record.get("id", ""))
    ours = tenant_write_sources(tenant=run.tenant)
    carried = record.get("contactReferences")
    if carried is None:
        # Not in the payload (the observed webhook shape has none): unknown, so the two-way links we
        # hold for this Virtuous id stand in, each checked against what we wrote.
        references = _references_by_virtuous_id(run, virtuous_id, ours)
    else:
        references = [
            (str(r["source"]), str(r["id"]))
            for r in carried
            if isinstance(r, dict) and r.get("source") in ours and r.get("id")
        ]
    confirmed = 0
    two_way_sources = two_way.two_way_connections(tenant=run.tenant) if run.local else {}
    for source, reference in references:
        connection = two_way_sources.get(source)
        two_way_link = connection is not None or carried is None
        if two_way_link and not _shows_our_write(run, source, reference, connection):
            continue
        confirmed += outbound_confirm(
            tenant=run.tenant,
            kind="contact",
            external_source=source,
            external_id=reference,
            virtuous_id=virtuous_id,
            sent_only=two_way_link,
        )
    origin = "ours" if confirmed else "elsewhere"
    if run.mode == Mode.OFF:
        return ("ours" if references else "elsewhere"), confirmed
    if _stale(run, "contact"):
        return origin, confirmed
    survivor = to_int(record.get("mergedIntoContactId"))
    if survivor:
        _merge(run, merged_id=virtuous_id, survivor_id=str(survivor))
        return "merged", confirmed
    _mirror(run, "contact")
    linked = _linked_records(run, virtuous_id, references)
    if not linked:
        run.actions.append("no two-way partner link: mirrored only")
    for record_row, connection in linked:
        _contact_linked(run, record_row, connection, ours=bool(confirmed))
    return origin, confirmed


def _references_by_virtuous_id(run: _Run, virtuous_id: str, ours: set[str]) -> list[tuple[str, str]]:
    if not virtuous_id:
        return []
    return list(
        SyncRecord.objects.filter(
            tenant=run.tenant,
            resource_type=SyncRecord.ResourceType.CONTACT,
            virtuous_id=virtuous_id,
            partner_source__in=ours,
        )
        .order_by("pk")
        .values_list("partner_source", "partner_id")
    )


def _shows_our_write(run: _Run, source: str, reference: str, connection: Any | None) -> bool:
    """For a two-way contact, an event confirms our sent write only if it shows what we wrote:
    an edit made in Virtuous while our transaction waits for the nightly batch is not it. Only a
    field the payload carries and that differs counts; one it leaves out is unknown, not changed."""
    payload = (
        OutboundItem.objects.filter(
            tenant=run.tenant,
            operation=Operation.CONTACT_TRANSACTION,
            external_source=source,
            external_id=reference,
            state__in=ON_THE_WAY,
        )
        .order_by("-pk")
        .values_list("payload", flat=True)
        .first()
    )
    if payload is None:
        return True
    # Names and e-mail read the same through every partner side; a link whose connection is no
    # longer active is still compared through any of them.
    target = two_way.target_for(connection.provider if connection is not None else partner_keys()[0])
    ours = two_way.partner_view(payload, target)
    theirs = two_way.virtuous_view(run.change.record, target, fallback=ours)
    return all(not ours[f] or ours[f] == theirs[f] for f in ("firstName", "lastName", "email"))


def _linked_records(
    run: _Run, virtuous_id: str, references: list[tuple[str, str]]
) -> list[tuple[SyncRecord, Any]]:
    connections = two_way.two_way_connections(tenant=run.tenant)
    if not connections:
        return []
    keys = {(s, r) for s, r in references if s in connections}
    rows = {
        r.pk: r
        for r in SyncRecord.objects.select_for_update().filter(
            tenant=run.tenant,
            resource_type=SyncRecord.ResourceType.CONTACT,
            partner_source__in=list(connections),
            virtuous_id=virtuous_id,
        )
    }
    for source, reference in keys:
        row = (
            SyncRecord.objects.select_for_update()
            .filter(
                tenant=run.tenant,
                resource_type=SyncRecord.ResourceType.CONTACT,
                partner_source=source,
                partner_id=reference,
            )
            .first()
        )
        if row is not None:
            rows[row.pk] = row
    return [(row, connections[row.partner_source]) for row in sorted(rows.values(), key=lambda r: r.pk)]


def _known_partner(tenant: Tenant, row: SyncRecord, target: two_way.TwoWayTarget) -> dict[str, Any]:
    """The partner's shared fields as we last knew them: its snapshot, else its last capture."""
    if row.partner_snapshot:
        return row.partner_snapshot
    payload = (
        OutboundItem.objects.filter(
            tenant=tenant,
            operation=Operation.CONTACT_TRANSACTION,
            external_source=row.partner_source,
            external_id=row.partner_id,
        )
        .order_by("-pk")
        .values_list("payload", flat=True)
        .first()
    )
    return two_way.partner_view(payload, target) if payload else {}


def _contact_linked(run: _Run, row: SyncRecord, connection: Any, *, ours: bool) -> None:
    target = two_way.target_for(connection.provider)
    label = f"{row.partner_source}/{row.partner_id}"
    known = _known_partner(run.tenant, row, target)
    # A field the payload leaves out reads as the partner has it: unknown must never become a
    # change written back (an absent tag list would otherwise remove every partner tag).
    view = two_way.virtuous_view(run.change.record, target, fallback=known)
    digest = two_way.fingerprint(view)
    modified = to_datetime(run.change.record.get("modifiedDateTimeUtc"))
    seen = {"virtuous_fingerprint": digest, "virtuous_modified_at": modified or row.virtuous_modified_at}
    if row.virtuous_modified_at and modified and modified < row.virtuous_modified_at:
        run.actions.append(f"{label}: stale (older than the version held); skipped")
        return
    if ours:
        _save(run, row, note="our write confirmed", **seen)
        return
    if digest == row.virtuous_fingerprint:
        run.actions.append(f"{label}: echo (shared fields unchanged); dropped")
        _save(run, row, quiet=True, **seen)
        return
    if not row.virtuous_fingerprint and two_way.same_shared(view, known):
        run.did(f"{label}: Virtuous already matches the partner; baseline recorded")
        _save(run, row, **seen)
        return
    _changed_elsewhere(run, row, connection, view, known, modified, seen)


def _changed_elsewhere(
    run: _Run,
    row: SyncRecord,
    connection: Any,
    view: dict[str, Any],
    known: dict[str, Any],
    modified: dt.datetime | None,
    seen: dict[str, Any],
) -> None:
    label = f"{row.partner_source}/{row.partner_id}"
    policy = run.tenant.conflict_policy
    fields = two_way.SHARED_FIELDS
    if policy == Policy.FIELD_OWNERSHIP:
        owners = two_way.owners_for(connection)
        fields = tuple(f for f in fields if owners.get(f) == "virtuous")
    if row.sync_state == State.CONFLICT:
        run.did(f"{label}: in conflict; change recorded, nothing written until a person resolves it")
        _save(run, row, **seen)
        return
    if row.sync_state == State.PARTNER_PENDING and policy != Policy.FIELD_OWNERSHIP:
        verdict = _both_sides(run, row, modified)
        if verdict != "virtuous":
            state = State.CONFLICT if verdict == "conflict" else State.PARTNER_PENDING
            run.did(f"{label}: changed on both sides; {verdict}")
            _save(run, row, sync_state=state, note=f"both sides changed: {verdict}"[:300], **seen)
            return
        superseded = _supersede_partner_writes(run, row)
        if superseded:
            run.did(
                f"{label}: changed on both sides; Virtuous wins, {superseded} partner write(s) superseded"
            )
    cooldown_until = run.now + dt.timedelta(seconds=run.tenant.inbound_cooldown_seconds)
    changes = two_way.partner_changes(virtuous=view, partner=known, fields=fields)
    run.did(f"{label}: changed elsewhere → virtuous_pending until {cooldown_until:%H:%M:%S}Z")
    if changes:
        if run.partner:
            request = two_way.partner_update_request(
                connection=connection,
                partner_id=row.partner_id,
                changes=changes,
                before=known,
                virtuous_id=str(run.change.record.get("id", "")),
                version=str(
                    run.change.record.get("modifiedDateTimeUtc") or seen["virtuous_fingerprint"][:16]
                ),
            )
            _, created = outbound_enqueue(tenant=run.tenant, request=request, origin=run.origin)
            run.actions.append(
                f"{label}: partner write {'queued' if created else 'already queued'}: {sorted(changes)}"
            )
        else:
            run.actions.append(f"{label}: partner write not made ({run.mode} mode): {sorted(changes)}")
    _save(
        run,
        row,
        sync_state=State.VIRTUOUS_PENDING,
        cooldown_until=cooldown_until,
        note="changed in Virtuous",
        **seen,
    )
    if run.local:
        _hold_outbound(run, row, cooldown_until)


def _both_sides(run: _Run, row: SyncRecord, modified: dt.datetime | None) -> str:
    """Who wins when the partner's change is still on its way and Virtuous changed too."""
    if run.tenant.conflict_policy == Policy.MOST_RECENT:
        if modified is None or row.partner_modified_at is None:
            return "conflict"
        if row.partner_modified_at > modified:
            return "partner is newer; its change stands"
        return "virtuous"
    on_the_way = OutboundItem.objects.filter(
        tenant=run.tenant,
        operation=Operation.CONTACT_TRANSACTION,
        external_source=row.partner_source,
        external_id=row.partner_id,
        state__in=ON_THE_WAY,
    ).exists()
    return "conflict" if on_the_way else "virtuous"


def _supersede_partner_writes(run: _Run, row: SyncRecord) -> int:
    """Virtuous wins: the partner's not-yet-sent contact writes for this record are discarded."""
    pending = OutboundItem.objects.filter(
        tenant=run.tenant,
        operation=Operation.CONTACT_TRANSACTION,
        external_source=row.partner_source,
        external_id=row.partner_id,
        state=OutboundItem.State.PENDING,
    )
    if not run.local:
        return pending.count()
    return pending.update(
        state=OutboundItem.State.DISCARDED,
        note="superseded: changed in Virtuous too, and the policy lets Virtuous win",
        updated_at=run.now,
    )


def _hold_outbound(run: _Run, row: SyncRecord, until: dt.datetime) -> None:
    """Outbound writes for this record wait out the cooldown (one indexed UPDATE, so the drain's
    claim needs no join to the sync state)."""
    OutboundItem.objects.filter(
        tenant=run.tenant,
        direction=Direction.OUTBOUND,
        external_source=row.partner_source,
        external_id=row.partner_id,
        state=OutboundItem.State.PENDING,
        next_attempt_at__lt=until,
    ).update(next_attempt_at=until, note="held: cooldown after a change in Virtuous", updated_at=run.now)


def _save(run: _Run, row: SyncRecord, *, quiet: bool = False, **fields: Any) -> None:
    if not run.local:
        return
    fields.setdefault("last_synced_at", run.now)
    if quiet:
        fields.pop("last_synced_at")
    SyncRecord.objects.filter(pk=row.pk).update(**fields, updated_at=run.now)


def _merge(run: _Run, *, merged_id: str, survivor_id: str) -> None:
    run.did(f"contact {merged_id} merged into {survivor_id}: references repointed")
    if not run.local:
        return
    records = SyncRecord.objects.filter(
        tenant=run.tenant, resource_type=SyncRecord.ResourceType.CONTACT, virtuous_id=merged_id
    ).update(
        virtuous_id=survivor_id, note=f"repointed: {merged_id} merged into {survivor_id}", updated_at=run.now
    )
    items = OutboundItem.objects.filter(
        tenant=run.tenant, operation=Operation.CONTACT_TRANSACTION, virtuous_id=merged_id
    ).update(virtuous_id=survivor_id, updated_at=run.now)
    mirrored = mirror.mirror_repoint_contact(
        tenant=run.tenant, merged_id=int(merged_id), survivor_id=int(survivor_id)
    )
    mirror.mirror_upsert(tenant=run.tenant, resource="contact", record=run.change.record)
    run.actions.append(f"repointed {records} sync record(s), {items} item(s), {mirrored} mirrored gift(s)")
