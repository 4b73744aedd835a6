from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations.types import OutboundRequest
from integrations.virtuous.errors import BudgetExhausted, ErrorClass, VirtuousError
from sync.models import Attempt, DeadLetter, Operation, Origin, OutboundItem, SyncRecord
from sync.outbound.claim import outbound_claim, outbound_reclaim_expired
from sync.outbound.drain import outbound_drain
from sync.outbound.enqueue import outbound_enqueue
from tenants.models import Tenant
from tests.sync.conftest import enqueue_gifts


def _drain(tenant, fake, **kwargs):
    return outbound_drain(tenant=tenant, client_factory=fake.factory, max_budget_wait=0, **kwargs)


def _states(tenant):
    return sorted(OutboundItem.objects.filter(tenant=tenant).values_list("external_id", "state"))


def test_batched_gifts_go_in_one_call_and_become_submitted(tenant, fake_virtuous):
    enqueue_gifts(tenant, 3)
    result = _drain(tenant, fake_virtuous)
    assert result.submitted == 3 and result.calls == 1 and result.stopped == "empty"
    path, body = fake_virtuous.calls[0]
    assert path == "/api/v2/Gift/Transactions"
    assert [t["transactionId"] for t in body] == ["pi_1", "pi_2", "pi_3"]
    assert "transactionSource" not in body[0]  # it travels once, at the batch level
    assert {s for _, s in _states(tenant)} == {"submitted"}
    assert set(SyncRecord.objects.filter(tenant=tenant).values_list("status", flat=True)) == {"submitted"}
    attempt = Attempt.objects.get(tenant=tenant)
    assert (attempt.status_code, attempt.item_count, attempt.items.count()) == (200, 3, 3)


def test_unbatched_tenant_sends_one_call_per_item_with_the_stored_ids(tenant, fake_virtuous):
    tenant.batching_enabled = False
    tenant.save()
    enqueue_gifts(tenant, 2)
    _drain(tenant, fake_virtuous)
    assert [(p, b["transactionId"], b["transactionSource"]) for p, b in fake_virtuous.calls] == [
        ("/api/v2/Gift/Transaction", "pi_1", "Stripe"),
        ("/api/v2/Gift/Transaction", "pi_2", "Stripe"),
    ]


def test_batch_failing_as_a_whole_is_split_until_the_bad_item_stands_alone(tenant, fake_virtuous):
    enqueue_gifts(tenant, 8)
    fake_virtuous.fail_items = {"pi_6"}
    result = _drain(tenant, fake_virtuous)
    assert result.submitted == 7 and result.dead == 1
    assert dict(_states(tenant))["pi_6"] == "dead"
    dl = DeadLetter.objects.get(tenant=tenant)
    assert (dl.status_code, dl.error_class, dl.original_payload["transactionId"]) == (
        400,
        "permanent",
        "pi_6",
    )
    assert dl.error_details == [{"field": "amount"}]
    # 1 whole batch + halves until isolated: 8 → 4+4 → (4 ok) 2+2 → (2 ok) 1+1
    assert len(fake_virtuous.calls) == 7


@pytest.mark.parametrize("status", [500, 502, 503])
def test_transient_errors_back_off_and_keep_the_item(tenant, fake_virtuous, status):
    (item,) = enqueue_gifts(tenant, 1)
    fake_virtuous.outcomes.append(VirtuousError(ErrorClass.TRANSIENT, "upstream", status_code=status))
    before = timezone.now()
    result = _drain(tenant, fake_virtuous)
    item.refresh_from_db()
    assert result.retried == 1 and result.submitted == 0
    assert (item.state, item.attempts, item.last_status_code, item.last_error_class) == (
        "pending",
        1,
        status,
        "transient",
    )
    assert before <= item.next_attempt_at <= before + timedelta(seconds=tenant.retry_base_seconds + 1)


def test_timeouts_are_transient_too(tenant, fake_virtuous):
    (item,) = enqueue_gifts(tenant, 1)
    fake_virtuous.outcomes.append(VirtuousError(ErrorClass.TRANSIENT, "read timeout", status_code=None))
    _drain(tenant, fake_virtuous)
    item.refresh_from_db()
    assert (item.state, item.attempts, item.last_status_code) == ("pending", 1, None)


def test_exhausted_retries_become_a_dead_letter_and_alert(
    tenant, fake_virtuous, django_capture_on_commit_callbacks
):
    tenant.retry_max_attempts = 2
    tenant.alert_emails = "ops@alpha.example"
    tenant.save()
    (item,) = enqueue_gifts(tenant, 1)
    for _ in range(2):
        fake_virtuous.outcomes.append(VirtuousError(ErrorClass.TRANSIENT, "boom", status_code=503))
        OutboundItem.objects.filter(pk=item.pk).update(next_attempt_at=timezone.now())
        with django_capture_on_commit_callbacks(execute=True):
            _drain(tenant, fake_virtuous)
    item.refresh_from_db()
    assert (item.state, item.attempts) == ("dead", 2)
    dl = DeadLetter.objects.get(item=item)
    assert dl.attempt_count == 2 and dl.resolution == "open"
    assert "Retries exhausted" in dl.last_error
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ops@alpha.example"]


@pytest.mark.parametrize("status", [400, 403, 422])
def test_permanent_errors_go_straight_to_dead_letters(tenant, fake_virtuous, status):
    (item,) = enqueue_gifts(tenant, 1)
    fake_virtuous.outcomes.append(VirtuousError(ErrorClass.PERMANENT, "nope", status_code=status))
    result = _drain(tenant, fake_virtuous)
    item.refresh_from_db()
    assert result.dead == 1 and item.state == "dead" and item.attempts == 1
    assert DeadLetter.objects.get(item=item).status_code == status
    assert SyncRecord.objects.get(tenant=tenant).status == "failed"


@pytest.mark.parametrize("cls,status", [(ErrorClass.NOT_FOUND, 404), (ErrorClass.CONFLICT, 409)])
def test_context_dependent_errors_retry_a_few_times_only(tenant, fake_virtuous, cls, status):
    (item,) = enqueue_gifts(tenant, 1)
    OutboundItem.objects.filter(pk=item.pk).update(attempts=4)
    fake_virtuous.outcomes.append(VirtuousError(cls, "hm", status_code=status))
    _drain(tenant, fake_virtuous)
    item.refresh_from_db()
    assert item.state == "dead"  # 5th attempt of a context-dependent failure
    assert DeadLetter.objects.get(item=item).status_code == status


def test_429_pauses_without_spending_attempts_and_releases_everything(tenant, fake_virtuous):
    tenant.batching_enabled = False
    tenant.save()
    items = enqueue_gifts(tenant, 3)
    fake_virtuous.outcomes.append(
        VirtuousError(ErrorClass.RATE_LIMITED, "slow down", status_code=429, retry_after=30)
    )
    before = timezone.now()
    result = _drain(tenant, fake_virtuous)
    assert result.stopped == "rate_limited" and result.released == 3
    for item in items:
        item.refresh_from_db()
        assert (item.state, item.attempts) == ("pending", 0)
        assert item.next_attempt_at >= before + timedelta(seconds=29)
    assert len(fake_virtuous.calls) == 1


def test_401_pauses_only_this_tenant_and_alerts(
    tenant, other_tenant, fake_virtuous, django_capture_on_commit_callbacks
):
    tenant.alert_emails = "ops@alpha.example"
    tenant.save()
    (item,) = enqueue_gifts(tenant, 1)
    enqueue_gifts(other_tenant, 1)
    fake_virtuous.outcomes.append(VirtuousError(ErrorClass.NEEDS_ATTENTION, "denied", status_code=401))
    with django_capture_on_commit_callbacks(execute=True):
        result = _drain(tenant, fake_virtuous)
    tenant.refresh_from_db()
    other_tenant.refresh_from_db()
    item.refresh_from_db()
    assert result.stopped == "paused"
    assert tenant.status == Tenant.Status.PAUSED and other_tenant.status == Tenant.Status.ACTIVE
    assert (item.state, item.attempts) == ("pending", 0)
    assert [m.subject for m in mail.outbox] == ["[Giftline] Alpha Food Bank: syncing paused"]
    # the other tenant still drains
    assert _drain(other_tenant, fake_virtuous).submitted == 1


def test_paused_tenant_is_not_drained(tenant, fake_virtuous):
    from tenants.services import tenant_pause

    enqueue_gifts(tenant, 1)
    tenant_pause(tenant=tenant, reason="manual")
    assert _drain(tenant, fake_virtuous).stopped == "paused"
    assert fake_virtuous.calls == []


def test_budget_exhausted_releases_without_attempt_and_stops(tenant, fake_virtuous):
    (item,) = enqueue_gifts(tenant, 1)
    fake_virtuous.outcomes.append(BudgetExhausted(retry_in=120))
    result = _drain(tenant, fake_virtuous)
    item.refresh_from_db()
    assert result.stopped == "budget" and fake_virtuous.calls == []
    assert (item.state, item.attempts) == ("pending", 0)
    assert item.next_attempt_at > timezone.now() + timedelta(seconds=100)


def test_short_budget_waits_are_slept_through(tenant, fake_virtuous):
    enqueue_gifts(tenant, 1)
    fake_virtuous.outcomes.append(BudgetExhausted(retry_in=0.01))
    result = outbound_drain(tenant=tenant, client_factory=fake_virtuous.factory, max_budget_wait=1)
    assert result.submitted == 1


def test_live_items_go_before_bulk_items_and_bulk_uses_the_reserve_keeping_client(tenant, fake_virtuous):
    seen = []
    original = fake_virtuous.factory

    def factory(t, *, keep_reserve=False, on_call=None):
        seen.append(keep_reserve)
        return original(t, keep_reserve=keep_reserve, on_call=on_call)

    enqueue_gifts(tenant, 2, origin=Origin.BULK, start=1)
    enqueue_gifts(tenant, 2, origin=Origin.WEBHOOK, start=10)
    outbound_drain(tenant=tenant, client_factory=factory, max_budget_wait=0)
    assert [t["transactionId"] for t in fake_virtuous.calls[0][1]] == ["pi_10", "pi_11"]
    assert [t["transactionId"] for t in fake_virtuous.calls[1][1]] == ["pi_1", "pi_2"]
    assert sorted(seen) == [False, True]


def test_claim_is_exclusive_and_conditional(tenant):
    enqueue_gifts(tenant, 3)
    first = outbound_claim(tenant=tenant, worker="w1", limit=2)
    second = outbound_claim(tenant=tenant, worker="w2", limit=5)
    assert len(first) == 2 and len(second) == 1
    assert not {i.pk for i in first} & {i.pk for i in second}
    assert outbound_claim(tenant=tenant, worker="w3", limit=5) == []


def test_expired_lease_is_reclaimed_with_the_same_ids_and_one_attempt_counted(tenant, fake_virtuous):
    (item,) = enqueue_gifts(tenant, 1)
    outbound_claim(tenant=tenant, worker="crashed", limit=1)
    OutboundItem.objects.filter(pk=item.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert outbound_reclaim_expired(tenant=tenant) == 1
    item.refresh_from_db()
    assert (item.state, item.attempts, item.lease_owner) == ("pending", 1, "")
    _drain(tenant, fake_virtuous)
    assert fake_virtuous.calls[0][1]["transactionId"] == "pi_1"


def test_live_lease_is_not_reclaimed(tenant):
    enqueue_gifts(tenant, 1)
    outbound_claim(tenant=tenant, worker="alive", limit=1)
    assert outbound_reclaim_expired(tenant=tenant) == 0


def test_item_lost_by_crashes_until_attempts_run_out_is_dead_lettered_not_retried_forever(
    tenant, fake_virtuous
):
    (item,) = enqueue_gifts(tenant, 1)
    OutboundItem.objects.filter(pk=item.pk).update(attempts=tenant.retry_max_attempts)
    _drain(tenant, fake_virtuous)
    item.refresh_from_db()
    assert item.state == "dead" and fake_virtuous.calls == []


def test_refund_waits_for_its_gift_then_reverses_it(tenant, fake_virtuous):
    request = OutboundRequest(
        operation=Operation.REVERSING_TRANSACTION,
        external_source="Stripe",
        external_id="re_1",
        payload={
            "reversedTransaction": {"transactionSource": "Stripe", "transactionId": "pi_1"},
            "giftDate": "2026-11-21",
        },
    )
    item, _ = outbound_enqueue(tenant=tenant, request=request, origin=Origin.WEBHOOK)
    result = _drain(tenant, fake_virtuous)
    item.refresh_from_db()
    assert (
        result.deferred == 1
        and item.state == "pending"
        and item.next_attempt_at > timezone.now() + timedelta(minutes=30)
    )
    # the nightly batch creates the gift; the deferred refund then goes through
    fake_virtuous.gifts_by_transaction[("Stripe", "pi_1")] = {"id": 555}
    OutboundItem.objects.filter(pk=item.pk).update(next_attempt_at=timezone.now())
    _drain(tenant, fake_virtuous)
    item.refresh_from_db()
    assert item.state == "submitted" and item.payload["reversedGiftId"] == 555
    assert fake_virtuous.calls[-1] == (
        "/api/Gift/ReversingTransaction",
        {"giftDate": "2026-11-21", "reversedGiftId": 555},
    )


def test_refund_whose_gift_never_appears_is_dead_lettered_after_the_defer_window(
    tenant, fake_virtuous, settings
):
    request = OutboundRequest(
        operation=Operation.REVERSING_TRANSACTION,
        external_source="Stripe",
        external_id="re_2",
        payload={"reversedTransaction": {"transactionSource": "Stripe", "transactionId": "pi_404"}},
    )
    item, _ = outbound_enqueue(tenant=tenant, request=request, origin=Origin.WEBHOOK)
    OutboundItem.objects.filter(pk=item.pk).update(
        created_at=timezone.now() - timedelta(hours=settings.OUTBOUND_DEFER_MAX_HOURS + 1)
    )
    result = _drain(tenant, fake_virtuous)
    assert (result.deferred, result.dead) == (0, 1)
    item.refresh_from_db()
    assert item.state == "dead" and "Gave up waiting" in item.last_error


def test_recurring_gift_create_resolves_the_contact_id_first(tenant, fake_virtuous):
    fake_virtuous.contacts[("Stripe", "cus_9")] = {"id": 321}
    request = OutboundRequest(
        operation=Operation.RECURRING_GIFT_CREATE,
        external_source="Stripe",
        external_id="sub_9",
        payload={
            "transactionSource": "Stripe",
            "transactionId": "sub_9",
            "amount": "10.00",
            "frequency": "Monthly",
            "contact": {"referenceSource": "Stripe", "referenceId": "cus_9"},
        },
    )
    item, _ = outbound_enqueue(tenant=tenant, request=request, origin=Origin.WEBHOOK)
    _drain(tenant, fake_virtuous)
    item.refresh_from_db()
    assert item.state == "submitted" and item.virtuous_id == "7001" and item.payload["contactId"] == 321
    assert "contact" not in fake_virtuous.calls[-1][1]


def test_a_drain_for_one_tenant_never_touches_another(tenant, other_tenant, fake_virtuous):
    enqueue_gifts(tenant, 2)
    enqueue_gifts(other_tenant, 2)
    _drain(tenant, fake_virtuous)
    assert set(OutboundItem.objects.filter(tenant=other_tenant).values_list("state", flat=True)) == {
        "pending"
    }
    assert not Attempt.objects.filter(tenant=other_tenant).exists()


def test_recurring_cancel_waits_for_the_create_then_uses_its_virtuous_id(tenant, fake_virtuous):
    create = OutboundRequest(
        operation=Operation.RECURRING_GIFT_CREATE,
        external_source="Stripe",
        external_id="sub_5",
        payload={"transactionSource": "Stripe", "transactionId": "sub_5", "contactId": 77, "amount": "10.00"},
    )
    cancel = OutboundRequest(
        operation=Operation.RECURRING_GIFT_CANCEL,
        external_source="Stripe",
        external_id="sub_5-cancel",
        payload={
            "recurringGiftTransaction": {"transactionSource": "Stripe", "transactionId": "sub_5"},
            "cancelReason": "Canceled in Stripe",
        },
    )
    cancel_item, _ = outbound_enqueue(tenant=tenant, request=cancel, origin=Origin.WEBHOOK)
    create_item, _ = outbound_enqueue(tenant=tenant, request=create, origin=Origin.WEBHOOK)
    OutboundItem.objects.filter(pk=create_item.pk).update(
        next_attempt_at=timezone.now() + timedelta(minutes=5)
    )
    _drain(tenant, fake_virtuous)
    cancel_item.refresh_from_db()
    assert cancel_item.state == "pending" and "not created in Virtuous yet" in cancel_item.last_error
    OutboundItem.objects.filter(pk__in=[create_item.pk, cancel_item.pk]).update(
        next_attempt_at=timezone.now()
    )
    _drain(tenant, fake_virtuous)  # create answers with id 7001; the cancel is deferred once more
    OutboundItem.objects.filter(pk=cancel_item.pk).update(next_attempt_at=timezone.now())
    _drain(tenant, fake_virtuous)
    cancel_item.refresh_from_db()
    assert cancel_item.state == "submitted" and cancel_item.payload["recurringGiftId"] == 7001
    assert fake_virtuous.calls[-1] == (
        "/api/RecurringGift/Cancel/7001",
        {"cancelReason": "Canceled in Stripe"},
    )


def test_cancel_of_a_schedule_we_never_created_is_a_dead_letter(tenant, fake_virtuous):
    cancel = OutboundRequest(
        operation=Operation.RECURRING_GIFT_CANCEL,
        external_source="Stripe",
        external_id="sub_x-cancel",
        payload={"recurringGiftTransaction": {"transactionSource": "Stripe", "transactionId": "sub_x"}},
    )
    item, _ = outbound_enqueue(tenant=tenant, request=cancel, origin=Origin.WEBHOOK)
    _drain(tenant, fake_virtuous)
    item.refresh_from_db()
    assert item.state == "dead" and DeadLetter.objects.filter(item=item).exists()


def test_a_failing_organisation_costs_one_call_not_a_slice(tenant, other_tenant, fake_virtuous):
    tenant.batching_enabled = False
    tenant.save()
    failed, *rest = enqueue_gifts(tenant, 5)
    enqueue_gifts(other_tenant, 1)
    fake_virtuous.outcomes.append(VirtuousError(ErrorClass.TRANSIENT, "upstream", status_code=503))
    result = _drain(tenant, fake_virtuous)
    assert (result.stopped, result.calls, result.retried, result.released) == ("failing", 1, 1, 4)
    assert len(fake_virtuous.calls) == 1
    failed.refresh_from_db()
    assert (failed.state, failed.attempts) == ("pending", 1)
    held = OutboundItem.objects.filter(pk__in=[i.pk for i in rest])
    # handed back without spending attempts, not before the failed item's own retry
    assert set(held.values_list("state", "attempts")) == {("pending", 0)}
    assert min(held.values_list("next_attempt_at", flat=True)) >= failed.next_attempt_at - timedelta(
        seconds=1
    )
    assert OutboundItem.objects.get(tenant=other_tenant).state == "pending"  # the outsider is untouched


def test_every_call_leaves_an_attempt_row_whatever_its_outcome(tenant, fake_virtuous):
    enqueue_gifts(tenant, 2)
    fake_virtuous.fail_items = {"pi_2"}  # the batch fails as a whole, then is halved
    result = _drain(tenant, fake_virtuous)
    assert result.submitted == 1 and result.dead == 1
    statuses = sorted(Attempt.objects.filter(tenant=tenant).values_list("status_code", "item_count"))
    assert statuses == [(200, 1), (400, 1), (400, 2)]


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement record is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_2xx_is_recorded_in_one_statement_on_postgresql(tenant, other_tenant, fake_virtuous):
    tenant.batching_enabled = False
    tenant.save()
    items = enqueue_gifts(tenant, 3)
    (outsider,) = enqueue_gifts(other_tenant, 1)
    with CaptureQueriesContext(connection) as ctx:
        result = _drain(tenant, fake_virtuous)
    assert result.submitted == 3 and result.calls == 3
    records = [q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().startswith("WITH attempt")]
    assert len(records) == 3  # one statement per call: Attempt, links, items, sync records
    with connection.cursor() as cursor:  # written once, prepared once (unless turned off)
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%%WITH attempt%%'")
        assert cursor.fetchone()[0] == int(settings.DATABASE_PREPARED_STATEMENTS)
    assert set(OutboundItem.objects.filter(tenant=tenant).values_list("state", "attempts")) == {
        ("submitted", 1)
    }
    attempts = Attempt.objects.filter(tenant=tenant)
    assert sorted(attempts.values_list("status_code", "item_count")) == [(200, 1)] * 3
    assert sorted(pk for a in attempts for pk in a.items.values_list("pk", flat=True)) == sorted(
        i.pk for i in items
    )
    assert set(SyncRecord.objects.filter(tenant=tenant).values_list("status", flat=True)) == {"submitted"}
    assert SyncRecord.objects.get(tenant=other_tenant).status != "submitted"
    outsider.refresh_from_db()
    assert (outsider.state, outsider.attempts) == ("pending", 0)
