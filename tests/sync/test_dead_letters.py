import pytest

from integrations.virtuous.errors import ErrorClass, VirtuousError
from sync.models import DeadLetter, OutboundItem
from sync.outbound.deadletters import DeadLetterError, dead_letter_discard, dead_letter_replay
from sync.outbound.drain import outbound_drain
from tenants.models import AuditEvent
from tenants.services import Actor
from tests.sync.conftest import enqueue_gifts


@pytest.fixture
def dead_letter(tenant, fake_virtuous) -> DeadLetter:
    enqueue_gifts(tenant, 1)
    fake_virtuous.outcomes.append(VirtuousError(ErrorClass.PERMANENT, "amount invalid", status_code=422))
    outbound_drain(tenant=tenant, client_factory=fake_virtuous.factory)
    return DeadLetter.objects.get(tenant=tenant)


def test_replay_as_is_requeues_the_same_item_and_audits(dead_letter, superuser, fake_virtuous, tenant):
    item = dead_letter_replay(dead_letter=dead_letter, actor=Actor(user=superuser, via="admin"))
    dead_letter.refresh_from_db()
    assert item.pk == dead_letter.item_id
    assert (item.state, item.attempts, item.origin) == ("pending", 0, "replay")
    assert (dead_letter.resolution, dead_letter.resolved_by) == ("replayed", superuser)
    assert AuditEvent.objects.filter(action="dead_letter.replayed", actor=superuser, tenant=tenant).exists()
    assert outbound_drain(tenant=tenant, client_factory=fake_virtuous.factory).submitted == 1
    assert OutboundItem.objects.count() == 1


def test_fix_and_replay_changes_the_payload_but_not_the_ids(dead_letter, superuser):
    fixed = {
        **dead_letter.original_payload,
        "amount": "30.00",
        "designations": [{"projectCode": "GEN", "amountDesignated": "30.00"}],
    }
    item = dead_letter_replay(
        dead_letter=dead_letter, actor=Actor(user=superuser), payload=fixed, note="amount corrected"
    )
    dead_letter.refresh_from_db()
    assert item.payload["amount"] == "30.00"
    assert (
        dead_letter.resolution == "fixed_and_replayed" and dead_letter.resolution_note == "amount corrected"
    )
    assert dead_letter.original_payload["amount"] == "25.00"  # the original stays for the record


def test_fix_may_not_change_the_transaction_id(dead_letter, superuser):
    bad = {**dead_letter.original_payload, "transactionId": "pi_new"}
    with pytest.raises(DeadLetterError, match="transactionId identifies this record"):
        dead_letter_replay(dead_letter=dead_letter, actor=Actor(user=superuser), payload=bad)
    dead_letter.refresh_from_db()
    assert dead_letter.resolution == "open"
    assert OutboundItem.objects.get().state == "dead"


def test_discard_needs_a_reason_and_is_final(dead_letter, superuser):
    with pytest.raises(DeadLetterError, match="reason is required"):
        dead_letter_discard(dead_letter=dead_letter, actor=Actor(user=superuser), reason=" ")
    dead_letter_discard(dead_letter=dead_letter, actor=Actor(user=superuser), reason="test donation")
    dead_letter.refresh_from_db()
    assert dead_letter.resolution == "discarded" and OutboundItem.objects.get().state == "discarded"
    with pytest.raises(DeadLetterError, match="already resolved"):
        dead_letter_replay(dead_letter=dead_letter, actor=Actor(user=superuser))


def test_replayed_item_that_fails_again_opens_a_new_dead_letter(
    dead_letter, superuser, fake_virtuous, tenant
):
    dead_letter_replay(dead_letter=dead_letter, actor=Actor(user=superuser))
    fake_virtuous.outcomes.append(VirtuousError(ErrorClass.PERMANENT, "still invalid", status_code=422))
    outbound_drain(tenant=tenant, client_factory=fake_virtuous.factory)
    assert list(DeadLetter.objects.order_by("id").values_list("resolution", flat=True)) == [
        "replayed",
        "open",
    ]
