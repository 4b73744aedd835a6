"""Contact/Query, Gift/Query (filters, paging, full vs abbreviated), Contact/Find, direct contacts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from integrations.sandbox import services
from integrations.sandbox.models import SandboxContact, SandboxGift

T0 = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)


def _cond(parameter, operator, value, secondary=None):
    cond = {"parameter": parameter, "operator": operator, "value": value}
    if secondary is not None:
        cond["secondaryValue"] = secondary
    return {"groups": [{"conditions": [cond]}]}


@pytest.fixture
def gifts(org):
    contact = services.sandbox_contact_create(organization=org, body={"name": "Ada"})
    made = []
    for i in range(5):
        gift = services.sandbox_gift_create(
            organization=org,
            contact_id=contact.pk,
            amount=Decimal(10 + i),
            gift_date=dt.date(2026, 4, 1 + i),
            batch="B1" if i < 3 else "B2",
            transaction_source="Giftline",
            transaction_id=f"ch_{i}",
        )
        SandboxGift.objects.filter(pk=gift.pk).update(modified_at=T0 + dt.timedelta(hours=i))
        made.append(gift.pk)
    return made


def test_gift_query_last_modified_is_after_sorted_and_paged(api, gifts):
    body = _cond("Last Modified Date", "Is After", "2026-05-01T13:00:00Z") | {"sortBy": "Id"}
    page1 = api.post("Gift/Query/FullGift", body, skip=0, take=2).json()
    page2 = api.post("Gift/Query/FullGift", body, skip=2, take=2).json()
    assert page1["total"] == 3 and page2["total"] == 3
    assert [g["id"] for g in page1["list"] + page2["list"]] == gifts[2:]
    assert page1["list"][0]["transactionId"] == "ch_2"
    assert page1["list"][0]["modifiedDateTimeUtc"] == "2026-05-01T14:00:00.000000Z"


def test_naive_datetimes_are_in_the_organisation_time_zone(api, gifts):
    # 08:00 in Chicago (CDT, UTC-5) is 13:00 UTC.
    body = _cond("Last Modified Date", "Is After", "2026-05-01T08:00:00")
    assert api.post("Gift/Query", body).json()["total"] == 3


def test_abbreviated_gift_has_no_transaction_pair(api, gifts):
    item = api.post("Gift/Query", {}).json()["list"][0]
    assert set(item) == {
        "id", "contactId", "contactIndividualId", "giftType", "giftDate", "amount",
        "segment", "batch", "giftUrl", "culture", "exchangeRate",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_cond("Gift Date", "Between", "2026-04-02", "2026-04-04"), [1, 2, 3]),
        (_cond("Gift Date", "On Or After", "2026-04-04"), [3, 4]),
        (_cond("Batch", "Is", "B2"), [3, 4]),
        (_cond("Last Modified Date", "Is Before", "2026-05-01T13:30:00Z"), [0, 1]),
        (_cond("Amount", "Greater Than", "12"), [3, 4]),
        (
            {
                "groups": [
                    {"conditions": [{"parameter": "Batch", "operator": "Is", "value": "B1"},
                                    {"parameter": "Gift Date", "operator": "On Or After", "value": "2026-04-02"}]},
                    {"conditions": [{"parameter": "Gift Date", "operator": "Is", "value": "2026-04-05"}]},
                ]
            },
            [1, 2, 4],
        ),
    ],
)  # fmt: skip
def test_gift_query_filters(api, gifts, body, expected):
    result = api.post("Gift/Query", body, take=100).json()
    assert [g["id"] for g in result["list"]] == [gifts[i] for i in expected]
    assert result["total"] == len(expected)


def test_gift_id_cursor_and_descending_sort(api, gifts):
    body = _cond("Gift Id", "Greater Than", gifts[1]) | {"sortBy": "Amount", "descending": True}
    assert [g["id"] for g in api.post("Gift/Query", body).json()["list"]] == gifts[:1:-1]


@pytest.mark.parametrize(
    ("body", "query", "field"),
    [
        (_cond("Favourite Colour", "Is", "blue"), {}, "parameter"),
        (_cond("Gift Date", "Contains", "2026"), {}, "operator"),
        (_cond("Gift Date", "Is", "someday"), {}, "value"),
        ({"sortBy": "Colour"}, {}, "sortBy"),
        ({}, {"take": 1001}, "take"),
        ({}, {"take": "ten"}, "skip/take"),
    ],
)
def test_query_errors_are_400(api, gifts, body, query, field):
    response = api.post("Gift/Query", body, **query)
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == field


def test_take_defaults_to_10_and_allows_1000(api, org):
    contact = services.sandbox_contact_create(organization=org, body={"name": "Ada"})
    SandboxGift.objects.bulk_create(
        SandboxGift(
            organization=org,
            contact=contact,
            amount=Decimal("1.00"),
            gift_date=dt.date(2026, 1, 1),
            created_at=T0,
            modified_at=T0,
        )
        for _ in range(12)
    )
    assert len(api.post("Gift/Query", {}).json()["list"]) == 10
    assert len(api.post("Gift/Query", {}, take=1000).json()["list"]) == 12


def test_contact_query_email_archived_and_full(api, org):
    ada = services.sandbox_contact_create(
        organization=org,
        body={
            "name": "Ada",
            "referenceSource": "Giftline",
            "referenceId": "cus_1",
            "contactIndividuals": [
                {"firstName": "Ada", "contactMethods": [{"type": "Home Email", "value": "ada@x.org"}]}
            ],
        },
    )
    old = services.sandbox_contact_create(organization=org, body={"name": "Old", "isArchived": True})
    email = _cond("Email Address", "Is", "ADA@x.org")
    assert api.post("Contact/Query", email).json() == {
        "list": [
            {
                "id": ada.pk,
                "contactType": "Household",
                "name": "Ada",
                "email": "ada@x.org",
                "isArchived": False,
            }
        ],
        "total": 1,
    }
    full = api.post("Contact/Query/FullContact", email).json()["list"][0]
    assert full["contactReferences"] == [{"source": "Giftline", "id": "cus_1"}]
    assert [c["id"] for c in api.post("Contact/Query", {}).json()["list"]] == [ada.pk]
    assert [c["id"] for c in api.post("Contact/Query", {"includeArchived": True}).json()["list"]] == [
        ada.pk,
        old.pk,
    ]
    after = _cond("Contact Id", "Greater Than", ada.pk) | {"includeArchived": True}
    assert [c["id"] for c in api.post("Contact/Query", after).json()["list"]] == [old.pk]


def test_contact_find_reference_wins_over_email_and_404(api, org):
    by_ref = services.sandbox_contact_create(
        organization=org, body={"name": "Ref", "referenceSource": "Giftline", "referenceId": "cus_1"}
    )
    by_email = services.sandbox_contact_create(
        organization=org,
        body={
            "name": "Mail",
            "contactIndividuals": [{"contactMethods": [{"type": "Email", "value": "m@x.org"}]}],
        },
    )
    both = api.get("Contact/Find", email="m@x.org", referenceSource="Giftline", referenceId="cus_1")
    assert both.json()["id"] == by_ref.pk
    assert api.get("Contact/Find", email="M@x.org").json()["id"] == by_email.pk
    assert api.get("Contact/Find", email="nobody@x.org").status_code == 404
    assert api.get("Contact/Find", referenceSource="Giftline", referenceId="nope").status_code == 404
    assert api.get("Contact/Find").status_code == 400


def test_direct_contact_create_get_and_put(api, org):
    body = {
        "contactType": "Household",
        "name": "The Lovelaces",
        "contactReferences": [{"source": "Other", "id": "o-1"}],
        "contactIndividuals": [
            {
                "firstName": "Ada",
                "lastName": "Lovelace",
                "contactMethods": [{"type": "Home Email", "value": "a@x.org"}],
            }
        ],
        "contactAddresses": [
            {"address1": "1 Main St", "city": "Austin", "stateCode": "TX", "isPrimary": True}
        ],
    }
    created = api.post("Contact", body)
    assert created.status_code == 200
    contact = created.json()
    assert contact["contactReferences"] == [{"source": "Other", "id": "o-1"}]
    assert contact["address"]["state"] == "TX"
    assert contact["contactIndividuals"][0]["id"] == contact["id"] * 1000 + 1
    assert api.post("Contact", body).status_code == 400  # the reference is taken
    assert api.post("Contact", {"name": "Twin"}).status_code == 200  # direct create never dedupes

    updated = api.put(f"Contact/{contact['id']}", {"name": "Lovelace Household"}).json()
    assert updated["name"] == "Lovelace Household"
    assert updated["contactIndividuals"] == contact["contactIndividuals"]  # patch: the rest is kept
    assert updated["modifiedDateTimeUtc"] > contact["modifiedDateTimeUtc"]
    assert api.get(f"Contact/{contact['id']}").json() == updated
    assert api.get("Contact/999999").status_code == 404
    assert SandboxContact.objects.filter(organization=org).count() == 2
