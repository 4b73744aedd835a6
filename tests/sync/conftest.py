"""A scripted stand-in for VirtuousClient, for drain tests that need exact control of outcomes.

End-to-end behaviour against HTTP is covered with `responses` and the sandbox elsewhere; here the
fake lets each test script a sequence of outcomes per call and see exactly what was sent.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from integrations.types import OutboundRequest
from integrations.virtuous.client import CallRecord
from integrations.virtuous.errors import BudgetExhausted, ErrorClass, VirtuousError
from sync.models import Operation, Origin
from sync.outbound.enqueue import outbound_enqueue


class FakeVirtuous:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.outcomes: deque = deque()
        self.fail_items: set[str] = set()  # transactionIds that make any call containing them fail with 400
        self.gifts_by_transaction: dict[tuple[str, str], dict] = {}
        self.contacts: dict[tuple[str, str], dict] = {}

    def factory(self, tenant, *, keep_reserve=False, on_call=None):
        return _Bound(self, keep_reserve, on_call)


class _Bound:
    def __init__(self, fake: FakeVirtuous, keep_reserve: bool, on_call) -> None:
        self.fake, self.keep_reserve, self.on_call = fake, keep_reserve, on_call

    def _do(self, method: str, path: str, body: Any, ids: list[str] | None = None) -> Any:
        outcome = self.fake.outcomes.popleft() if self.fake.outcomes else None
        if isinstance(outcome, BudgetExhausted):
            raise outcome
        self.fake.calls.append((path, body))
        error = outcome if isinstance(outcome, VirtuousError) else None
        if error is None and ids and self.fake.fail_items & set(ids):
            error = VirtuousError(
                ErrorClass.PERMANENT, "bad item", status_code=400, details=[{"field": "amount"}]
            )
        if self.on_call:
            self.on_call(
                CallRecord(
                    method,
                    path,
                    error.status_code if error else 200,
                    5,
                    "req-1",
                    error.error_class if error else None,
                    None,
                    None,
                )
            )
        if error:
            raise error
        return outcome

    def gift_transaction(self, payload):
        return self._do("POST", "/api/v2/Gift/Transaction", payload, [payload["transactionId"]])

    def gift_transactions(self, *, transaction_source, transactions, **batch):
        return self._do(
            "POST", "/api/v2/Gift/Transactions", transactions, [t["transactionId"] for t in transactions]
        )

    def contact_transaction(self, payload):
        return self._do("POST", "/api/Contact/Transaction", payload, [payload["referenceId"]])

    def contact_batch(self, *, reference_source, contacts):
        return self._do("POST", "/api/Contact/Batch", contacts, [c["referenceId"] for c in contacts])

    def gift_get_by_transaction(self, source, transaction_id):
        self._do("GET", f"/api/Gift/{source}/{transaction_id}", None)
        if (source, transaction_id) not in self.fake.gifts_by_transaction:
            raise VirtuousError(ErrorClass.NOT_FOUND, "not found", status_code=404)
        return self.fake.gifts_by_transaction[(source, transaction_id)]

    def contact_get_by_reference(self, source, reference_id):
        self._do("GET", f"/api/Contact/{source}/{reference_id}", None)
        if (source, reference_id) not in self.fake.contacts:
            raise VirtuousError(ErrorClass.NOT_FOUND, "not found", status_code=404)
        return self.fake.contacts[(source, reference_id)]

    def contact_find(self, *, email=None, reference_source=None, reference_id=None):
        self._do("GET", "/api/Contact/Find", None)
        return self.fake.contacts.get((reference_source, reference_id))

    def gift_get(self, gift_id):
        self._do("GET", f"/api/Gift/{gift_id}", None)
        return {"id": gift_id, "contactId": 1, "amount": "25.00"}

    def gifts_by_contact(self, contact_id):
        self._do("GET", f"/api/Gift/ByContact/{contact_id}", None)
        return []

    def recurring_gifts_by_contact(self, contact_id):
        self._do("GET", f"/api/RecurringGift/ByContact/{contact_id}", None)
        return []

    def gift_reversing_transaction(self, payload):
        self._do("POST", "/api/Gift/ReversingTransaction", payload)
        return {"id": 9001}

    def recurring_gift_create(self, payload):
        self._do("POST", "/api/RecurringGift", payload)
        return {"id": 7001}

    def recurring_gift_cancel(self, recurring_gift_id, *, cancel_reason="", category_id=None):
        return self._do(
            "PUT", f"/api/RecurringGift/Cancel/{recurring_gift_id}", {"cancelReason": cancel_reason}
        )


@pytest.fixture
def fake_virtuous() -> FakeVirtuous:
    return FakeVirtuous()


def gift_request(n: int | str, *, source: str = "Stripe", amount: str = "25.00") -> OutboundRequest:
    tid = f"pi_{n}"
    return OutboundRequest(
        operation=Operation.GIFT_TRANSACTION,
        external_source=source,
        external_id=tid,
        payload={
            "transactionSource": source,
            "transactionId": tid,
            "amount": Decimal(amount),
            "giftDate": "2026-11-20",
            "giftType": "Credit",
            "contact": {"referenceId": f"cus_{n}", "email": f"donor{n}@example.org"},
            "designations": [{"projectCode": "GEN", "amountDesignated": Decimal(amount)}],
        },
    )


def enqueue_gifts(
    tenant, count: int, *, origin: str = Origin.WEBHOOK, start: int = 1, source: str = "Stripe"
):
    return [
        outbound_enqueue(tenant=tenant, request=gift_request(n, source=source), origin=origin)[0]
        for n in range(start, start + count)
    ]


def claim_concurrently(claim: Callable[[str], list], *, prefix: str, workers: int = 4) -> dict[str, list]:
    """Call ``claim(name)`` until it comes back empty in ``workers`` threads started together (one
    database connection each, closed at the end); what each worker claimed, by its name."""
    claimed: dict[str, list] = {}
    barrier = threading.Barrier(workers)

    def worker(name: str) -> None:
        barrier.wait()
        mine: list = []
        try:
            while batch := claim(name):
                mine.extend(batch)
        finally:
            claimed[name] = mine
            connection.close()

    threads = [threading.Thread(target=worker, args=(f"{prefix}{n}",)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return claimed
