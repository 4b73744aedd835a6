"""The holding state, exactly-once resubmission, validation, and the nightly batch."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from integrations.sandbox import services
from integrations.sandbox.models import SandboxContact, SandboxGift, SandboxTransaction
from tests.integrations.sandbox.conftest import contact_item, counters, gift_item


def test_gift_transaction_is_held_then_created_by_the_batch(api, org):
    response = api.post("v2/Gift/Transaction", gift_item())
    assert response.status_code == 200 and response.content == b""
    assert api.get("Gift/Giftline/ch_1").status_code == 404  # held: not a gift yet
    assert api.post("Contact/Transaction", contact_item()).status_code == 200
    assert api.get("Contact/Giftline/cus_1").status_code == 404

    result = services.sandbox_batch_run(organization=org)

    assert result == {
        "contacts_created": 1,
        "contacts_updated": 0,
        "gifts_created": 1,
        "needs_update": 0,
        "webhooks_sent": 0,
        "webhooks_failed": 0,
    }
    contact = api.get("Contact/Giftline/cus_1").json()
    assert contact["name"] == "Ada Lovelace"
    assert contact["contactReferences"] == [{"source": "Giftline", "id": "cus_1"}]
    assert contact["contactIndividuals"][0]["contactMethods"][0]["value"] == "ada@example.org"
    gift = api.get("Gift/Giftline/ch_1").json()
    assert gift["contactId"] == contact["id"]
    assert gift["amount"] == "25.00"
    assert gift["giftDate"] == "2026-03-01" and gift["giftDateFormatted"] == "3/1/2026"
    assert gift["giftDesignations"] == [
        {"projectId": None, "projectCode": "GEN", "externalAccountingCode": None, "amountDesignated": "25.00"}
    ]
    assert api.get(f"Gift/{gift['id']}").json() == gift
    assert counters(org) == {
        "requests_total": 7,
        "writes_total": 2,
        "transactions_received": 2,
        "duplicate_submissions": 0,
        "contacts_created": 1,
        "gifts_created": 1,
        "webhooks_sent": 0,
        "webhooks_failed": 0,
        "rate_limited_responses": 0,
        "faults_injected": 0,
    }


def test_resubmitting_the_same_gift_never_makes_a_second_gift(api, org):
    api.post("Contact/Transaction", contact_item())
    for _ in range(3):
        assert api.post("v2/Gift/Transaction", gift_item(amount="25.00")).status_code == 200
    services.sandbox_batch_run(organization=org)
    assert api.post("v2/Gift/Transaction", gift_item()).status_code == 200  # after processing, too
    services.sandbox_batch_run(organization=org)
    assert SandboxGift.objects.filter(organization=org).count() == 1
    assert SandboxTransaction.objects.get(kind="gift").submit_count == 4
    c = counters(org)
    assert (c["transactions_received"], c["duplicate_submissions"], c["gifts_created"]) == (5, 3, 1)


def test_batch_call_counts_duplicates_per_item(api, org):
    body = {
        "transactionSource": "Giftline",
        "transactions": [gift_item("a"), gift_item("b"), gift_item("a")],
    }
    assert api.post("v2/Gift/Transactions", body).status_code == 200
    assert api.post("v2/Gift/Transactions", body).status_code == 200
    assert sorted(SandboxTransaction.objects.values_list("external_id", "submit_count")) == [
        ("a", 4),
        ("b", 2),
    ]
    c = counters(org)
    assert (c["writes_total"], c["transactions_received"], c["duplicate_submissions"]) == (2, 6, 4)


def test_batch_defaults_fill_items(api, org):
    item = gift_item("d1")
    for key in ("transactionSource", "giftDate", "giftType"):
        item.pop(key)
    body = {
        "transactionSource": "Giftline",
        "batch": "B-7",
        "defaultGiftDate": "2026-04-02",
        "defaultGiftType": "EFT",
        "createImport": True,
        "importName": "April",
        "transactions": [item],
    }
    assert api.post("v2/Gift/Transactions", body).status_code == 200
    payload = SandboxTransaction.objects.get().payload
    assert (payload["transactionSource"], payload["giftDate"], payload["giftType"], payload["batch"]) == (
        "Giftline",
        "2026-04-02",
        "EFT",
        "B-7",
    )


def test_invalid_item_rejects_the_whole_batch_and_stores_nothing(api, org):
    bad_sum = gift_item("b", designations=[{"projectCode": "GEN", "amountDesignated": "20.00"}])
    no_id = gift_item("")
    body = {"transactionSource": "Giftline", "transactions": [gift_item("a"), bad_sum, no_id]}
    response = api.post("v2/Gift/Transactions", body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["message"] == "2 of 3 items are invalid; nothing was stored."
    assert [(d["index"], d["field"], d["code"]) for d in error["details"]] == [
        (1, "transactions[1].designations", "DESIGNATION_SUM_MISMATCH"),
        (2, "transactions[2].transactionId", "REQUIRED"),
    ]
    assert not SandboxTransaction.objects.exists()
    assert counters(org)["writes_total"] == 0 and counters(org)["transactions_received"] == 0


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        (
            {"designations": [{"projectCode": "A", "amountDesignated": "10"}]},
            "designations",
            "DESIGNATION_SUM_MISMATCH",
        ),
        ({"amount": "abc"}, "amount", "INVALID"),
        ({"amount": "-5"}, "amount", "INVALID"),
        ({"amount": "1.005"}, "amount", "INVALID"),
        ({"amount": None}, "amount", "REQUIRED"),
        ({"giftDate": "March"}, "giftDate", "INVALID"),
        ({"contact": {}}, "contact", "REQUIRED"),
        ({"transactionSource": ""}, "transactionSource", "REQUIRED"),
        ({"designations": [{"amountDesignated": "25"}]}, "designations[0]", "REQUIRED"),
    ],
)
def test_gift_validation_errors(api, org, overrides, field, code):
    response = api.post("v2/Gift/Transaction", gift_item(**overrides))
    assert response.status_code == 400
    assert (field, code) in [(d["field"], d["code"]) for d in response.json()["error"]["details"]]
    assert not SandboxTransaction.objects.exists()


def test_gift_designations_alias_and_numeric_amounts(api, org):
    item = gift_item(amount=30.1)
    item.pop("designations")
    item["giftDesignations"] = [
        {"projectId": 7, "amountDesignated": 10.05},
        {"projectCode": "B", "amountDesignated": "20.05"},
    ]
    assert api.post("v2/Gift/Transaction", item).status_code == 200
    payload = SandboxTransaction.objects.get().payload
    assert payload["amount"] == "30.10"
    assert [d["amountDesignated"] for d in payload["designations"]] == ["10.05", "20.05"]


def test_gift_without_designations_is_accepted_undesignated(api, org):
    assert api.post("v2/Gift/Transaction", gift_item(designations=[])).status_code == 200


def test_contact_transaction_validation(api):
    response = api.post("Contact/Transaction", {"referenceSource": "Giftline", "email": "not-an-email"})
    assert response.status_code == 400
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert fields == {"referenceId", "email"}


def test_batch_matches_contacts_by_reference_then_email(api, org):
    by_email = services.sandbox_contact_create(
        organization=org,
        body={
            "name": "Grace Hopper",
            "contactIndividuals": [
                {
                    "firstName": "Grace",
                    "contactMethods": [{"type": "Home Email", "value": "GRACE@example.org"}],
                }
            ],
        },
    )
    by_ref = services.sandbox_contact_create(
        organization=org, body={"name": "Alan Turing", "referenceSource": "Giftline", "referenceId": "cus_at"}
    )
    api.post(
        "Contact/Batch",
        {
            "referenceSource": "Giftline",
            "contacts": [
                {"referenceId": "cus_gh", "email": "grace@example.org", "lastName": "Hopper"},
                {"referenceId": "cus_at", "email": "alan@example.org", "firstName": "Alan"},
                {"referenceId": "cus_new", "name": "New Person"},
            ],
        },
    )
    result = services.sandbox_batch_run(organization=org)
    assert (result["contacts_created"], result["contacts_updated"]) == (1, 2)
    assert api.get("Contact/Giftline/cus_gh").json()["id"] == by_email.pk
    assert api.get("Contact/Giftline/cus_at").json()["id"] == by_ref.pk
    by_ref.refresh_from_db()
    assert by_ref.email == "alan@example.org"
    assert SandboxContact.objects.filter(organization=org).count() == 3
    assert counters(org)["contacts_created"] == 3  # two direct creates + one from the batch


def test_resubmitted_contact_is_applied_again_without_a_second_contact(api, org):
    api.post("Contact/Transaction", contact_item())
    services.sandbox_batch_run(organization=org)
    api.post("Contact/Transaction", contact_item(email="ada@new.example.org"))
    result = services.sandbox_batch_run(organization=org)
    assert result["contacts_updated"] == 1
    contact = SandboxContact.objects.get(organization=org)
    assert contact.email == "ada@new.example.org"
    assert counters(org)["duplicate_submissions"] == 1


def test_unmatched_gift_stays_in_needs_update_until_a_person_resolves_it(api, org):
    api.post("v2/Gift/Transaction", gift_item(contact={"referenceId": "cus_later"}))
    result = services.sandbox_batch_run(organization=org)
    assert result["needs_update"] == 1 and result["gifts_created"] == 0
    assert SandboxTransaction.objects.get().state == "needs_update"
    assert api.get("Gift/Giftline/ch_1").status_code == 404
    assert services.sandbox_batch_run(organization=org)["needs_update"] == 0  # still there, not recounted

    # The contact arriving later does not pull the gift out of needs-update (spec 4.6: a person does).
    api.post("Contact/Transaction", contact_item("cus_later"))
    result = services.sandbox_batch_run(organization=org)
    assert (result["contacts_created"], result["gifts_created"]) == (1, 0)
    assert api.get("Gift/Giftline/ch_1").status_code == 404
    assert SandboxTransaction.objects.get(kind="gift").state == "needs_update"

    assert services.sandbox_needs_update_resolve(organization=org) == {
        "gifts_created": 1,
        "still_needs_update": 0,
    }
    assert api.get("Gift/Giftline/ch_1").status_code == 200
    assert SandboxTransaction.objects.get(kind="gift").state == "processed"


def test_gift_matches_by_email_when_reference_unknown(api, org):
    contact = services.sandbox_contact_create(
        organization=org,
        body={
            "name": "Ada",
            "contactIndividuals": [{"contactMethods": [{"type": "Email", "value": "ada@example.org"}]}],
        },
    )
    api.post("v2/Gift/Transaction", gift_item(contact={"referenceId": "unknown", "email": "Ada@Example.org"}))
    services.sandbox_batch_run(organization=org)
    assert api.get("Gift/Giftline/ch_1").json()["contactId"] == contact.pk


def test_gift_follows_a_merged_contact_to_the_survivor(api, org):
    survivor = services.sandbox_contact_create(organization=org, body={"name": "Keep"})
    merged = services.sandbox_contact_create(
        organization=org, body={"name": "Gone", "referenceSource": "Giftline", "referenceId": "cus_1"}
    )
    services.sandbox_contacts_merge(organization=org, survivor_id=survivor.pk, merged_id=merged.pk)
    api.post("v2/Gift/Transaction", gift_item(contact={"referenceId": "cus_1"}))
    services.sandbox_batch_run(organization=org)
    assert api.get("Gift/Giftline/ch_1").json()["contactId"] == survivor.pk
    assert api.get(f"Contact/{merged.pk}").json()["mergedIntoContactId"] == survivor.pk


def test_reversing_transaction_is_a_direct_create_and_not_idempotent(api, org):
    contact = services.sandbox_contact_create(organization=org, body={"name": "Ada"})
    gift = services.sandbox_gift_create(
        organization=org,
        contact_id=contact.pk,
        amount=Decimal("40.00"),
        gift_date=dt.date(2026, 3, 1),
        designations=[{"projectCode": "GEN", "amountDesignated": "40.00"}],
        transaction_source="Giftline",
        transaction_id="ch_9",
    )
    body = {"reversedGiftId": gift.pk, "giftDate": "2026-03-05", "notes": "refund re_1"}
    first = api.post("Gift/ReversingTransaction", body)
    assert first.status_code == 200
    offset = SandboxGift.objects.get(pk=first.json()["id"])
    assert offset.amount == Decimal("-40.00") and offset.gift_type == "ReversingTransaction"
    assert offset.designations == [{"projectCode": "GEN", "amountDesignated": "-40.00"}]
    # the read shape Virtuous documents names no reversed gift: the fake does not either
    assert "reversedGiftId" not in api.get(f"Gift/{offset.pk}").json()
    # like Virtuous (spec 4.7), sending it again makes a second offset: nothing is keyed
    second = api.post("Gift/ReversingTransaction", body)
    assert second.status_code == 200 and second.json()["id"] != offset.pk
    assert SandboxGift.objects.filter(reversed_gift=gift).count() == 2
    assert not SandboxTransaction.objects.exists()
    # the donor's gifts show both, as Gift/ByContact lists them
    listed = api.get(f"Gift/ByContact/{contact.pk}", sortBy="Id").json()
    assert [g["giftType"] for g in listed["list"]] == ["Cash", "ReversingTransaction", "ReversingTransaction"]
    # Lookups by the original transaction pair still find the original gift.
    assert api.get("Gift/Giftline/ch_9").json()["id"] == gift.pk
    reversal_of_reversal = api.post(
        "Gift/ReversingTransaction", {"reversedGiftId": offset.pk, "giftDate": "2026-03-06"}
    )
    assert reversal_of_reversal.status_code == 400


def test_reversing_an_unknown_gift_is_400(api, org):
    response = api.post("Gift/ReversingTransaction", {"reversedGiftId": 999999, "giftDate": "2026-03-05"})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "reversedGiftId"
    assert not SandboxTransaction.objects.exists()


def test_recurring_gift_create_get_cancel_and_a_repeat_makes_a_second_schedule(api, org):
    contact = services.sandbox_contact_create(organization=org, body={"name": "Ada"})
    body = {
        "contactId": contact.pk,
        "startDate": "2026-01-15",
        "frequency": "Monthly",
        "amount": "10.00",
        "designations": [{"projectCode": "GEN", "amountDesignated": "10.00"}],
        "transactionSource": "Giftline",
        "transactionId": "sub_1",
    }
    first = api.post("RecurringGift", body).json()
    again = api.post("RecurringGift", body).json()
    assert first["status"] == "Active" and first["amount"] == "10.00"
    # a direct create: the repeated transactionId makes a second schedule (spec 4.7)
    assert again["id"] != first["id"] and again["transactionId"] == "sub_1"
    listed = api.get(f"RecurringGift/ByContact/{contact.pk}").json()
    assert [s["id"] for s in listed["list"]] == [first["id"], again["id"]]
    assert api.get("RecurringGift/ByContact/999999").status_code == 404
    assert api.get(f"RecurringGift/{first['id']}").json() == first

    cancelled = api.put(f"RecurringGift/Cancel/{first['id']}", {"cancelReason": "donor asked"}).json()
    assert cancelled["status"] == "Cancelled" and cancelled["cancelDateTimeUtc"].endswith("Z")
    assert (
        api.put(f"RecurringGift/Cancel/{first['id']}", {}).json()["cancelDateTimeUtc"]
        == cancelled["cancelDateTimeUtc"]
    )
    assert api.put("RecurringGift/Cancel/999999", {}).status_code == 404


def test_recurring_gift_needs_a_contact_of_this_organisation(api, org):
    response = api.post("RecurringGift", {"contactId": 424242, "startDate": "2026-01-01", "amount": "5"})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "contactId"


def test_two_batch_runs_never_process_one_item_twice(api, org):
    api.post("Contact/Transaction", contact_item())
    api.post("v2/Gift/Transaction", gift_item())
    first = services.sandbox_batch_run(organization=org)
    second = services.sandbox_batch_run()
    assert first["gifts_created"] == 1 and second["gifts_created"] == 0 and second["contacts_updated"] == 0
    assert SandboxGift.objects.count() == 1
