"""Dead letters a person can read: a summary, Virtuous's field errors, the usual fix, a form that
checks Virtuous's rules and shows a diff, and identical causes grouped with one action."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse

from integrations.models import Connection
from integrations.virtuous.errors import ErrorClass, VirtuousError
from sync.admin.deadletter_text import cause, summary
from sync.models import DeadLetter, OutboundItem
from sync.outbound.drain import outbound_drain
from tenants.models import AuditEvent
from tests.sync.conftest import enqueue_gifts

UNKNOWN_PROJECT = [
    {"field": "designations[0].projectCode", "code": "INVALID", "message": "Project not found."}
]
SUM_MISMATCH = [
    {
        "field": "designations",
        "code": "DESIGNATION_SUM_MISMATCH",
        "message": "Designations add up to 20.00, the amount is 25.00.",
    }
]


def _dead(tenant, fake_virtuous, n: int, details: list[dict], status: int = 400) -> DeadLetter:
    enqueue_gifts(tenant, 1, start=n, source="Donorbox")
    item = OutboundItem.objects.get(tenant=tenant, external_id=f"pi_{n}")
    item.payload["contact"].update(firstName="Edsger", lastName="Dijkstra")
    OutboundItem.objects.filter(pk=item.pk).update(payload=item.payload)
    fake_virtuous.outcomes.append(
        VirtuousError(ErrorClass.PERMANENT, "VALIDATION_ERROR: invalid", status_code=status, details=details)
    )
    outbound_drain(tenant=tenant, client_factory=fake_virtuous.factory)
    return DeadLetter.objects.select_related("item").get(tenant=tenant, item__external_id=f"pi_{n}")


@pytest.fixture
def projects(tenant, other_tenant):
    for t, codes in ((tenant, {"spring": "SPRING", "general": "GEN"}), (other_tenant, {"x": "OTHERCODE"})):
        Connection.objects.create(
            tenant=t,
            provider="donorbox",
            source_name="Donorbox",
            project_code_map=codes,
            default_project_code="GEN",
        )


def _cs(tenant, *, pii: bool):
    user = get_user_model().objects.create_user("cs", "cs@example.org", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Customer success"))
    tenant.assigned_staff.add(user)
    if pii:
        from django.contrib.auth.models import Permission

        user.user_permissions.add(Permission.objects.get(codename="view_donor_pii"))
    return get_user_model().objects.get(pk=user.pk)


def test_the_summary_reads_like_a_sentence_and_masks_the_donor_without_permission(tenant, fake_virtuous):
    dl = _dead(tenant, fake_virtuous, 1, SUM_MISMATCH)
    assert summary(dl, dl.item.payload, show_pii=True).startswith(
        "$25.00 from Edsger Dijkstra via Donorbox, 20 Nov"
    )
    masked = summary(dl, dl.item.payload, show_pii=False)
    assert "Edsger" not in masked and masked.startswith("$25.00 from ••• via Donorbox")
    assert cause(dl, dl.item.payload).text == "designations do not add up to the amount"


def test_the_detail_page_leads_with_the_summary_the_field_errors_and_the_usual_fix(
    client, tenant, fake_virtuous, projects
):
    dl = _dead(tenant, fake_virtuous, 1, UNKNOWN_PROJECT)
    client.force_login(_cs(tenant, pii=False))
    html = client.get(reverse("admin:sync_deadletter_change", args=[dl.pk])).content.decode()
    assert "Edsger" not in html and "donor1@example.org" not in html
    assert html.index('id="dl-summary"') < html.index("Details for engineers")
    assert '<span class="field">Project code</span>: Project not found.' in html
    assert "project code GEN unknown" in html and "What usually fixes this" in html
    listing = client.get(reverse("admin:sync_deadletter_changelist")).content.decode()
    assert "$25.00 from ••• via Donorbox" in listing and "project code GEN unknown" in listing


def test_the_form_checks_virtuous_rules_before_anything_is_queued(
    client, superuser, tenant, fake_virtuous, projects
):
    dl = _dead(tenant, fake_virtuous, 1, SUM_MISMATCH)
    client.force_login(superuser)
    url = reverse("admin:sync_deadletter_fix", args=[dl.public_id])
    page = client.get(url).content.decode()
    assert 'name="amount"' in page and 'name="designations-0-project_code"' in page
    base = {
        "amount": "25.00",
        "gift_date": "2026-11-20",
        "gift_type": "Credit",
        "donor_first_name": "Edsger",
        "donor_last_name": "Dijkstra",
        "donor_email": "donor1@example.org",
        "note": "fixed",
        "designations-TOTAL_FORMS": "2",
        "designations-INITIAL_FORMS": "1",
        "designations-MIN_NUM_FORMS": "0",
        "designations-MAX_NUM_FORMS": "10",
        "designations-0-project_code": "GEN",
        "designations-0-amount": "20.00",
        "designations-1-project_code": "",
        "designations-1-amount": "",
    }
    assert "add up to 20.00 but the amount is 25.00" in client.post(url, base).content.decode()
    assert (
        "not on this customer&#x27;s project list"
        in client.post(
            url, {**base, "designations-0-project_code": "NOPE", "designations-0-amount": "25.00"}
        ).content.decode()
    )
    assert "greater than or equal to 0.01" in client.post(url, {**base, "amount": "0"}).content.decode()
    other_tenants_code = {
        **base,
        "designations-0-project_code": "OTHERCODE",
        "designations-0-amount": "25.00",
    }
    assert "Project code OTHERCODE is not on" in client.post(url, other_tenants_code).content.decode()
    dl.refresh_from_db()
    assert dl.resolution == "open" and OutboundItem.objects.get(pk=dl.item_id).state == "dead"

    # split across two projects that add up: a diff to confirm, then the audited replay
    response = client.post(
        url,
        {
            **base,
            "designations-0-amount": "15.00",
            "designations-1-project_code": "SPRING",
            "designations-1-amount": "10.00",
        },
    )
    confirm = reverse("admin:sync_deadletter_fix_confirm", args=[dl.public_id])
    assert response.status_code == 302 and response["Location"] == confirm
    page = client.get(confirm).content.decode()
    assert "Designated amount (designation 1)" in page and "15.00" in page
    assert "Project code (designation 2)" in page and "SPRING" in page
    dl.refresh_from_db()
    assert dl.resolution == "open"  # nothing queued before confirming
    client.post(confirm)
    dl.refresh_from_db()
    item = OutboundItem.objects.get(pk=dl.item_id)
    assert dl.resolution == "fixed_and_replayed" and dl.resolution_note == "fixed" and item.state == "pending"
    assert item.payload["designations"] == [
        {"projectCode": "GEN", "amountDesignated": "15.00"},
        {"projectCode": "SPRING", "amountDesignated": "10.00"},
    ]
    assert item.payload["transactionId"] == "pi_1" and item.payload["giftType"] == "Credit"
    assert AuditEvent.objects.filter(action="dead_letter.fixed_and_replayed").count() == 1


def test_json_editing_is_for_integration_admins_only(client, tenant, fake_virtuous):
    dl = _dead(tenant, fake_virtuous, 1, SUM_MISMATCH)
    client.force_login(_cs(tenant, pii=True))
    assert client.get(reverse("admin:sync_deadletter_fix", args=[dl.public_id])).status_code == 200
    assert client.get(reverse("admin:sync_deadletter_fix_json", args=[dl.public_id])).status_code == 403


def test_identical_causes_are_grouped_with_one_action(
    client, superuser, tenant, other_tenant, fake_virtuous, projects
):
    for n in (1, 2, 3):
        _dead(tenant, fake_virtuous, n, UNKNOWN_PROJECT)
    _dead(tenant, fake_virtuous, 4, SUM_MISMATCH)
    _dead(other_tenant, fake_virtuous, 5, UNKNOWN_PROJECT)
    client.force_login(superuser)
    url = reverse("admin:sync_deadletter_groups")
    html = client.get(url).content.decode()
    assert "3 gifts: project code GEN unknown" in html and "1 gift: designations do not add up" in html
    key = f"{tenant.public_id}|gift_transaction|unknown_project:GEN"
    # the refused code itself is not offered, nor is another tenant's project
    assert client.post(url, {"group": key, "do": "change_project", "project_code": "GEN"}).status_code == 302
    assert DeadLetter.objects.filter(tenant=tenant, resolution="open").count() == 4
    client.post(url, {"group": key, "do": "change_project", "project_code": "SPRING"})
    fixed = OutboundItem.objects.filter(tenant=tenant, external_id__in=["pi_1", "pi_2", "pi_3"])
    assert {i.state for i in fixed} == {"pending"}
    assert all(i.payload["designations"][0]["projectCode"] == "SPRING" for i in fixed)
    assert DeadLetter.objects.get(tenant=other_tenant).resolution == "open"
    assert AuditEvent.objects.filter(action="dead_letter.fixed_and_replayed", tenant=tenant).count() == 3
