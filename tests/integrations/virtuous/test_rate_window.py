"""A tenant whose budget equals its organisation's limit meets no 429 at a window boundary.

Virtuous counts requests in fixed windows and announces the window's end in X-RateLimit-Reset as
whole Unix seconds; the real boundary can lie up to a second after the announced one (rounding,
and another clock). The fake below does exactly that, on the test's clock.
"""

from __future__ import annotations

import json
import math
import uuid

import pytest
import responses

from integrations.common.ratelimit import TenantBudget
from integrations.virtuous import client as client_module
from integrations.virtuous.client import VirtuousClient
from integrations.virtuous.errors import BudgetExhausted, VirtuousError
from tests.integrations.virtuous.conftest import BASE, TOKEN, FrozenClock

GIFT_URL = f"{BASE}/api/v2/Gift/Transaction"
LIMIT, WINDOW, SKEW = 5, 10, 0.6


class WindowedVirtuous:
    """Fixed windows of WINDOW seconds starting SKEW after a whole second; Reset is floored."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock, self.hits, self.window, self.accepted, self.refused = clock, 0, None, 0, 0

    def __call__(self, request):
        start = math.floor((self.clock.now - SKEW) / WINDOW) * WINDOW + SKEW
        if start != self.window:
            self.window, self.hits = start, 0
        self.hits += 1
        headers = {
            "X-RateLimit-Limit": str(LIMIT),
            "X-RateLimit-Remaining": str(max(LIMIT - self.hits, 0)),
            "X-RateLimit-Reset": str(math.floor(start + WINDOW)),  # whole seconds, before the real end
        }
        if self.hits > LIMIT:
            self.refused += 1
            return 429, {**headers, "Retry-After": "1"}, json.dumps({"message": "rate limited"})
        self.accepted += 1
        return 200, headers, json.dumps({"id": self.accepted})


def _run(backend, clock: FrozenClock, fake: WindowedVirtuous, *, until: float) -> None:
    budget = TenantBudget(
        f"window-{uuid.uuid4()}", LIMIT * 3600 // WINDOW, burst_seconds=WINDOW, backend=backend, clock=clock
    )
    client = VirtuousClient(base_url=BASE, token=TOKEN, budget=budget, tenant_label="alpha")
    while clock.now < until:
        try:
            client.gift_transaction({"transactionSource": "Stripe", "transactionId": str(clock.now)})
        except BudgetExhausted as exc:
            clock.advance(exc.retry_in)
        except VirtuousError:
            clock.advance(1.0)
        clock.advance(0.01)


@responses.activate
@pytest.mark.parametrize("margin", [0.0, 1.5])
def test_resuming_at_the_announced_reset_needs_a_margin(backend, clock, settings, margin):
    settings.VIRTUOUS_RATE_RESET_MARGIN_SECONDS = margin
    clock.now = 1_800_000_000.0 + SKEW  # a window starts
    fake = WindowedVirtuous(clock)
    responses.add_callback(responses.POST, GIFT_URL, callback=fake)
    _run(backend, clock, fake, until=clock.now + 4 * WINDOW)
    if margin:
        assert fake.refused == 0
        assert fake.accepted >= 4 * LIMIT  # the margin costs no window its budget
    else:
        assert fake.refused > 0  # resuming exactly at the floored reset lands in the old window


def _window_with(fake: WindowedVirtuous, clock: FrozenClock, *, left: int) -> None:
    fake.hits = LIMIT - left
    fake.window = math.floor((clock.now - SKEW) / WINDOW) * WINDOW + SKEW


@responses.activate
def test_calls_sent_after_an_answered_one_count_against_what_it_says_remains(backend, clock):
    fake = WindowedVirtuous(clock)
    siblings: list[int] = []

    def answer_while_a_sibling_leaves(request):
        siblings.append(client_module._in_flight_start(budget.key))  # sent after ours: not counted yet
        return fake(request)

    responses.add_callback(responses.POST, GIFT_URL, callback=answer_while_a_sibling_leaves)
    budget = TenantBudget(f"flight-{uuid.uuid4()}", 3600, burst_seconds=60, backend=backend, clock=clock)
    client = VirtuousClient(base_url=BASE, token=TOKEN, budget=budget, tenant_label="alpha")
    _window_with(fake, clock, left=2)
    try:
        client.gift_transaction({"transactionSource": "Stripe", "transactionId": "pi_1"})
        # Remaining says 1, but the sibling will take it: nothing is left for a third call.
        assert budget.try_acquire() > 0
    finally:
        client_module._in_flight_end(budget.key, siblings[0])
    assert client_module._in_flight.get(budget.key) is None  # every call accounted for
    assert client_module._sent.get(budget.key) is None


@responses.activate
def test_a_call_sent_before_an_answered_one_is_not_counted_twice(backend, clock):
    """A sibling sent first and answered last (answer times vary by hundreds of milliseconds)
    reached Virtuous before ours, so the count in our answer includes it. Subtracting it again
    stopped a tenant with overlapping calls one call short in every window."""
    fake = WindowedVirtuous(clock)
    responses.add_callback(responses.POST, GIFT_URL, callback=fake)
    budget = TenantBudget(f"flight-{uuid.uuid4()}", 3600, burst_seconds=60, backend=backend, clock=clock)
    client = VirtuousClient(base_url=BASE, token=TOKEN, budget=budget, tenant_label="alpha")
    _window_with(fake, clock, left=3)
    sibling = client_module._in_flight_start(budget.key)
    fake.hits += 1  # it arrived, and is still on its way back
    try:
        client.gift_transaction({"transactionSource": "Stripe", "transactionId": "pi_1"})
        assert budget.try_acquire() == 0.0  # remaining says 1, and it is ours to use
        assert budget.try_acquire() > 0  # and nothing more
    finally:
        client_module._in_flight_end(budget.key, sibling)
    assert client_module._in_flight.get(budget.key) is None
