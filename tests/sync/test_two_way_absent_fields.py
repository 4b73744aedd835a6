"""Issue 14 §6: a field Virtuous leaves out of a contact payload is unknown, not changed.

Each payload below omits fields the way the spec's examples do (virtuous-api.md §1.2 and §3): the
observed webhook shape has no ``contactReferences`` and no ``modifiedDateTimeUtc``; an individual may
come without ``contactMethods``; the read shape may lack ``tags``; an organisation may have no
individual at all; the documented envelope wraps the record in ``data``.
"""

from __future__ import annotations

import copy
import json

import pytest

from integrations.types import Operation, OutboundRequest
from integrations.virtuous.inbound import VirtuousChange, load
from sync.inbound.apply import virtuous_change_apply
from sync.models import Origin, OutboundItem, SyncRecord
from sync.outbound.enqueue import outbound_enqueue
from sync.two_way import state as two_way
from tests.sync.test_two_way import EMAIL, HASH, TARGET, _partner_items, partner_payload, vcontact
from tests.sync.test_two_way import linked as two_way_linked  # noqa: F401  (a fixture)


@pytest.fixture
def linked(two_way_linked):  # noqa: F811  (the imported fixture, requested by name)
    """test_two_way's Mailchimp member linked to Virtuous contact 100, with the outsider's twin."""
    return two_way_linked


def _without(record: dict, *paths: str) -> dict:
    """A copy of ``record`` with dotted keys removed (``contactIndividuals.0.contactMethods``)."""
    result = copy.deepcopy(record)
    for path in paths:
        node = result
        *parents, last = path.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]
    return result


def _observed_webhook(first="Adele", last="Lovelace", *, vid=100) -> dict:
    """The production shape of spec §3 [OBS], parsed by the real Virtuous loader."""
    body = {
        "event": "ContactUpdate",
        "contact": {
            "id": vid,
            "name": f"{first} {last}",
            "contactType": "Household",
            "customContactType": None,
            "contactAddresses": [{"state": "TN", "postal": "37201"}],
            "contactIndividuals": [
                {
                    "id": 7,
                    "firstName": first,
                    "lastName": last,
                    "contactMethods": [{"type": "Home Email", "value": EMAIL, "isPrimary": True}],
                }
            ],
            "tags": [],
            "organizationGroups": [],
        },
    }
    return load(json.dumps(body).encode())["record"]


def _enveloped(record: dict) -> dict:
    """The documented generic envelope (eventType, eventId, data)."""
    body = {"eventType": "contactUpdate", "eventId": "evt-1", "data": record}
    return load(json.dumps(body).encode())["record"]


OMISSIONS = {
    "observed webhook: no contactReferences, no modifiedDateTimeUtc": lambda: _observed_webhook(),
    "no contactReferences": lambda: _without(vcontact("Adele"), "contactReferences"),
    "individual without contactMethods (no e-mail)": lambda: _without(
        vcontact("Adele"), "contactIndividuals.0.contactMethods"
    ),
    "no tags": lambda: _without(vcontact("Adele"), "tags"),
    "no lastName on the individual": lambda: _without(vcontact("Adele"), "contactIndividuals.0.lastName"),
    "no modifiedDateTimeUtc": lambda: _without(vcontact("Adele"), "modifiedDateTimeUtc"),
    "data envelope without references and e-mail": lambda: _enveloped(
        _without(vcontact("Adele"), "contactReferences", "contactIndividuals.0.contactMethods")
    ),
}


def _our_write_submitted(tenant) -> OutboundItem:
    item, _ = outbound_enqueue(
        tenant=tenant,
        request=OutboundRequest(Operation.CONTACT_TRANSACTION, "Mailchimp", HASH, partner_payload("Adele")),
        origin=Origin.WEBHOOK,
    )
    OutboundItem.objects.filter(pk=item.pk).update(state="submitted", attempts=1)
    return item


@pytest.mark.parametrize("make_record", OMISSIONS.values(), ids=OMISSIONS.keys())
def test_our_partner_write_is_recognised_when_virtuous_leaves_fields_out(
    tenant, other_tenant, linked, make_record
):
    # given the partner's rename (Ada → Adele) is submitted to Virtuous
    item = _our_write_submitted(tenant)
    # when Virtuous reports the contact with the new name but leaves some fields out
    result = virtuous_change_apply(
        tenant=tenant, change=VirtuousChange("contactUpdate", "contact", make_record())
    )
    # then it is our write coming back: confirmed, in sync, nothing written back, no conflict
    assert (result["origin"], result["confirmed"]) == ("ours", 1), result
    item.refresh_from_db()
    assert item.state == "confirmed" and item.virtuous_id == "100"
    record = SyncRecord.objects.get(pk=linked["alpha"].pk)
    assert record.sync_state == "in_sync"
    assert not _partner_items(tenant).exists()
    # and the outsider's twin is untouched
    assert SyncRecord.objects.get(pk=linked["bravo"].pk).sync_state == "in_sync"


@pytest.mark.parametrize(
    "make_record",
    [
        lambda: _without(vcontact("Adele", "Byron"), "contactIndividuals.0.contactMethods"),
        lambda: _observed_webhook("Adele", "Byron"),
        lambda: _without(vcontact("Adele", "Byron"), "tags"),
    ],
    ids=["no e-mail", "observed shape", "no tags"],
)
def test_a_field_present_and_different_still_is_not_our_write(tenant, linked, make_record):
    # given our rename to Adele Lovelace is on its way
    item = _our_write_submitted(tenant)
    # when Virtuous shows a last name we never wrote (an edit made in Virtuous meanwhile)
    result = virtuous_change_apply(
        tenant=tenant, change=VirtuousChange("contactUpdate", "contact", make_record())
    )
    # then our write is not confirmed by it, and both sides changing is a conflict for a person
    assert result["confirmed"] == 0
    item.refresh_from_db()
    assert item.state == "submitted"
    assert SyncRecord.objects.get(pk=linked["alpha"].pk).sync_state == "conflict"


def test_a_change_elsewhere_without_a_tag_list_removes_no_partner_tag(tenant, linked):
    # given the partner member carries the tag "vip", mirrored in Virtuous as "MC: vip"
    snapshot = {**linked["alpha"].partner_snapshot, "tags": ["vip"]}
    full = vcontact(tags=["MC: vip"])
    SyncRecord.objects.filter(pk=linked["alpha"].pk).update(
        partner_snapshot=snapshot,
        virtuous_fingerprint=two_way.fingerprint(two_way.virtuous_view(full, TARGET)),
    )
    # when a rename made in Virtuous arrives without the tag list
    virtuous_change_apply(
        tenant=tenant, change=VirtuousChange("contactUpdate", "contact", _without(vcontact("Adele"), "tags"))
    )
    # then the partner write carries the rename and removes nothing
    assert _partner_items(tenant).get().payload["changes"] == {"firstName": "Adele"}


def test_a_repeat_of_the_known_state_without_an_e_mail_is_an_echo(tenant, linked):
    # when Virtuous repeats the state it already had, but this time without contact methods
    result = virtuous_change_apply(
        tenant=tenant,
        change=VirtuousChange(
            "contactUpdate", "contact", _without(vcontact(), "contactIndividuals.0.contactMethods")
        ),
    )
    # then it is dropped as an echo: the missing e-mail is not a change
    assert "echo" in " ".join(result["actions"])
    assert SyncRecord.objects.get(pk=linked["alpha"].pk).sync_state == "in_sync"
    assert not _partner_items(tenant).exists()


def test_carried_fields_name_only_what_the_payload_holds():
    assert two_way.virtuous_carried(vcontact()) == frozenset(two_way.VIEW_FIELDS)
    assert two_way.virtuous_carried({"id": 1, "name": "Acme Foundation"}) == frozenset()
    assert two_way.virtuous_carried(_without(vcontact(), "tags")) == {"firstName", "lastName", "email"}
    # an explicit empty tag list is carried: it says "no partner tags"
    assert "tags" in two_way.virtuous_carried(vcontact(tags=()))
