"""The load benchmarks' fake Virtuous: its accounting is what the benchmarks' verdicts rest on
(budget kept, exactly once), so it is held to the same rules as the sandbox."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from bench.fake_payloads import ApiError
from bench.fake_virtuous import Fake, Latency, Org

ROOT = Path(__file__).resolve().parents[2]


def gift(tid: str, amount: str = "25.00", **extra) -> dict:
    return {
        "transactionSource": "Stripe",
        "transactionId": tid,
        "amount": amount,
        "giftDate": "2026-11-20",
        "contact": {"referenceId": f"cus_{tid}", "email": f"{tid}@example.org"},
        "designations": [{"projectCode": "GEN", "amountDesignated": amount}],
        **extra,
    }


@pytest.fixture
def fake() -> Fake:
    fake = Fake(Latency(), seed=1)
    fake.control("POST", ["_fake", "orgs"], {}, {"orgs": [{"name": "ours", "token": "t-ours"}]})
    fake.control("POST", ["_fake", "orgs"], {}, {"orgs": [{"name": "outsider", "token": "t-out"}]})
    return fake


def test_rate_window_refuses_over_the_limit_and_resets():
    org = Org(name="o", token="t", limit=2, window=60)
    assert org.hit(120.0)[0] and org.hit(130.0)[0]
    allowed, headers, retry_after = org.hit(150.0)
    assert not allowed
    assert headers == {"X-RateLimit-Limit": "2", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "180"}
    assert retry_after == 30
    assert org.summary()["max_window_hits"] == 3  # the benchmark's "budget exceeded" check sees it
    allowed, headers, _ = org.hit(180.5)
    assert allowed and headers["X-RateLimit-Remaining"] == "1"


def test_a_gift_sent_twice_is_a_double_and_only_in_its_own_organisation(fake):
    ours, outsider = fake.by_name["ours"], fake.by_name["outsider"]
    fake.api(ours, "POST", ["api", "v2", "Gift", "Transaction"], {}, gift("pi_1"))
    fake.api(ours, "POST", ["api", "v2", "Gift", "Transactions"], {}, {
        "transactionSource": "Stripe", "transactions": [gift("pi_2"), gift("pi_1")],
    })  # fmt: skip
    fake.api(outsider, "POST", ["api", "v2", "Gift", "Transaction"], {}, gift("pi_1"))
    summary = ours.summary()
    assert (summary["gifts"], summary["gift_sends"], summary["gift_doubles"]) == (2, 3, 1)
    assert outsider.summary()["gift_doubles"] == 0
    listed = fake.control("GET", ["_fake", "gifts"], {"org": ["ours"]}, None)[1]
    assert sorted((row[1], row[2]) for row in listed["ours"]) == [("pi_1", 2), ("pi_2", 1)]


def test_one_bad_item_rejects_the_whole_batch(fake):
    ours = fake.by_name["ours"]
    with pytest.raises(ApiError) as error:
        fake.api(ours, "POST", ["api", "v2", "Gift", "Transactions"], {}, {
            "transactionSource": "Stripe", "transactions": [gift("pi_ok"), gift("pi_bad", amount="-3")],
        })  # fmt: skip
    assert error.value.status == 400
    assert error.value.details[0]["index"] == 1
    assert ours.gifts == {}


@pytest.mark.parametrize(
    "body",
    [
        gift("pi_x", designations=[{"projectCode": "GEN", "amountDesignated": "20.00"}]),
        {**gift("pi_x"), "contact": {}},
        {**gift("pi_x"), "giftDate": "20/11/2026"},
        {**gift("pi_x"), "transactionId": ""},
        {**gift("pi_x"), "designations": ["GEN"]},
    ],
)
def test_invalid_gifts_are_refused(fake, body):
    with pytest.raises(ApiError) as error:
        fake.api(fake.by_name["ours"], "POST", ["api", "v2", "Gift", "Transaction"], {}, body)
    assert error.value.status == 400
    assert fake.by_name["ours"].gifts == {}


def test_transactions_are_held_until_the_nightly_batch(fake):
    ours = fake.by_name["ours"]
    fake.api(ours, "POST", ["api", "v2", "Gift", "Transaction"], {}, gift("pi_1"))
    with pytest.raises(ApiError) as error:
        fake.api(ours, "GET", ["api", "Gift", "Stripe", "pi_1"], {}, None)
    assert error.value.status == 404
    fake.control("POST", ["_fake", "batch"], {}, None)
    status, record = fake.api(ours, "GET", ["api", "Gift", "Stripe", "pi_1"], {}, None)
    assert status == 200 and record["transactionId"] == "pi_1"
    body = {"reversedGiftId": record["id"], "giftDate": "2026-11-21"}
    fake.api(ours, "POST", ["api", "Gift", "ReversingTransaction"], {}, body)
    assert ours.summary()["reversals"] == 1
    with pytest.raises(ApiError):  # another organisation's gift id is not found
        fake.api(fake.by_name["outsider"], "POST", ["api", "Gift", "ReversingTransaction"], {}, body)


def test_recurring_gift_is_idempotent_on_its_pair_and_cancels(fake):
    ours = fake.by_name["ours"]
    contact = {"referenceSource": "Stripe", "referenceId": "cus_9", "email": "ada@example.org"}
    fake.api(ours, "POST", ["api", "Contact", "Transaction"], {}, contact)
    fake.control("POST", ["_fake", "batch"], {}, None)
    _, found = fake.api(ours, "GET", ["api", "Contact", "Find"], {"email": ["ADA@example.org"]}, None)
    body = {"contactId": found["id"], "amount": "10.00", "startDate": "2026-12-01",
            "transactionSource": "Stripe", "transactionId": "sub_1"}  # fmt: skip
    first = fake.api(ours, "POST", ["api", "RecurringGift"], {}, body)[1]
    again = fake.api(ours, "POST", ["api", "RecurringGift"], {}, body)[1]
    assert again["id"] == first["id"] and ours.summary()["recurring_created"] == 1
    _, cancelled = fake.api(ours, "PUT", ["api", "RecurringGift", "Cancel", str(first["id"])], {}, {})
    assert cancelled["status"] == "Cancelled" and cancelled["cancelDateTimeUtc"]
    with pytest.raises(ApiError):
        fake.api(ours, "PUT", ["api", "RecurringGift", "Cancel", "999999"], {}, {})


def test_paths_the_fake_does_not_serve_say_so(fake):
    with pytest.raises(ApiError) as error:
        fake.api(fake.by_name["ours"], "POST", ["api", "Gift", "Query", "FullGift"], {}, {})
    assert error.value.status == 404 and "sandbox" in error.value.message


def test_latency_draws():
    rng = random.Random(3)
    assert Latency().draw(rng) == 0.0
    assert Latency(median_ms=500).draw(rng) == 0.5
    assert Latency(median_ms=500, tail_rate=1.0, tail_ms=2000).draw(rng) == 2.0
    draws = [Latency(median_ms=500, sigma=0.3).draw(rng) for _ in range(2000)]
    assert 0.45 < sorted(draws)[1000] < 0.55  # the median is the median


@pytest.fixture
def served():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "bench.fake_virtuous", "--port", str(port)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # up to 30 s on a loaded machine
            if process.poll() is not None:
                pytest.fail(f"the fake Virtuous exited at start-up ({process.returncode})")
            try:
                requests.get(url + "/_fake/stats", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        else:
            pytest.fail("the fake Virtuous did not start listening within 30 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_over_http_auth_rate_headers_and_429(served):
    requests.post(
        served + "/_fake/orgs", json={"orgs": [{"name": "o", "token": "tok", "limit": 1, "window": 86400}]}
    )
    session = requests.Session()
    denied = session.post(
        served + "/api/v2/Gift/Transaction", json=gift("pi_1"), headers={"Authorization": "Bearer no"}
    )
    assert denied.status_code == 401 and denied.text == "Authorization has been denied for this request."
    headers = {"Authorization": "Bearer tok"}
    accepted = session.post(served + "/api/v2/Gift/Transaction", json=gift("pi_1"), headers=headers)
    assert accepted.status_code == 200 and accepted.content == b""
    assert accepted.headers["X-RateLimit-Limit"] == "1" and accepted.headers["X-RateLimit-Remaining"] == "0"
    refused = session.post(served + "/api/v2/Gift/Transaction", json=gift("pi_2"), headers=headers)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "RATE_LIMITED"
    stats = requests.get(served + "/_fake/stats").json()["orgs"]["o"]
    assert (stats["gifts"], stats["rate_limited"], stats["max_window_hits"]) == (1, 1, 2)
    usage = requests.get(served + "/_fake/usage", params={"start": 0, "end": time.time() + 1}).json()
    assert usage == {"o": 1}
