"""A lightweight fake Virtuous for load benchmarks: one asyncio process, no database.

    python -m bench.fake_virtuous --port 8123 [--latency-ms 500 --latency-sigma 0.35
                                              --tail-rate 0.01 --tail-ms 3000]

It serves the paths the outbound drain calls (``integrations/virtuous/endpoints.py``) with
Virtuous's auth, fixed-window rate limit (``X-RateLimit-Limit/Remaining/Reset`` on every answer,
``429`` + ``Retry-After`` + ``RATE_LIMITED`` over the limit), a per-request latency drawn from
a lognormal distribution with an optional tail (a non-blocking timer, never a sleeping thread),
and injected failures. Organisations live in memory, found by their bearer token. Every write is
counted per ``(transactionSource, transactionId)``, so a gift sent twice is seen as a double.
The Django sandbox (``integrations/sandbox``) stays the fake for functional and end-to-end tests;
this one exists so that a load benchmark measures the platform, not its fake: a request costs
0.1-0.2 ms of CPU here against about 7 ms and a PostgreSQL connection there. What it accepts
(the sandbox's checks, Virtuous's error envelope) is in ``bench/fake_payloads.py``.

Like Virtuous, transactions are held (``GET Gift/{source}/{id}`` and ``Contact/Find`` answer 404)
until the "nightly batch" (``POST /_fake/batch``) gives them ids.

Control paths (loopback, no auth, no latency, not rate limited):
  POST /_fake/orgs      {"orgs": [{"name", "token", "limit", "window", "fail_rate", "fail_status",
                                   "latency": {"median_ms", "sigma", "tail_rate", "tail_ms"}}]}
  POST /_fake/update    {"names": [...], <any of the org fields above but name and token>}
  GET  /_fake/stats     this process's CPU and every organisation's counters
  GET  /_fake/usage?start=&end=   per organisation, requests answered 2xx that arrived in [start, end)
  GET  /_fake/gifts[?org=name]    per organisation, [source, id, times received, first accepted at]
  POST /_fake/batch     the nightly batch: held gifts and contacts become records with ids
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import resource
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from bench.fake_payloads import (
    ApiError,
    contact_validate,
    gift_validate,
    invalid,
    not_found,
    text,
    valid_amount,
    valid_day,
    validate_all,
)

DENIED = b"Authorization has been denied for this request."
MAX_HEAD = 64 * 1024
MAX_BODY = 32 * 1024 * 1024


@dataclass
class Latency:
    """Seconds to hold one answer: lognormal around ``median_ms``; with probability ``tail_rate``
    a tail draw around ``tail_ms`` instead (Virtuous's slow minute, a GC pause, a cold cache)."""

    median_ms: float = 0.0
    sigma: float = 0.0
    tail_rate: float = 0.0
    tail_ms: float = 0.0

    def draw(self, rng: random.Random) -> float:
        median = self.median_ms
        if self.tail_rate and rng.random() < self.tail_rate:
            median = self.tail_ms
        if median <= 0:
            return 0.0
        if self.sigma > 0:
            return median * math.exp(self.sigma * rng.gauss(0.0, 1.0)) / 1000
        return median / 1000


@dataclass
class Org:
    name: str
    token: str
    limit: int = 5000
    window: int = 3600
    fail_rate: float = 0.0
    fail_status: int = 503
    latency: Latency | None = None  # None: the server's default
    window_start: int = 0
    window_hits: int = 0
    max_window_hits: int = 0
    statuses: Counter = field(default_factory=Counter)
    endpoints: Counter = field(default_factory=Counter)
    ok_arrivals: list[float] = field(default_factory=list)
    # (source, id) -> [times received, first accepted at (Unix), record id once batched, fields]
    gifts: dict[tuple[str, str], list] = field(default_factory=dict)
    contacts: dict[tuple[str, str], list] = field(default_factory=dict)
    contact_emails: dict[str, int] = field(default_factory=dict)
    reversals: Counter = field(default_factory=Counter)  # reversed gift id -> times
    recurring: dict[tuple[str, str], int] = field(default_factory=dict)
    recurring_by_id: dict[int, dict] = field(default_factory=dict)
    gift_ids: dict[int, tuple[str, str]] = field(default_factory=dict)
    contact_ids: dict[int, tuple[str, str]] = field(default_factory=dict)

    def configure(self, values: dict[str, Any]) -> None:
        for name in ("limit", "window", "fail_status"):
            if name in values:
                setattr(self, name, int(values[name]))
        if "fail_rate" in values:
            self.fail_rate = float(values["fail_rate"])
        if "latency" in values:
            self.latency = Latency(**values["latency"]) if values["latency"] is not None else None
        if self.limit < 1 or self.window < 1:
            raise ValueError("limit and window must be positive")

    def hit(self, now: float) -> tuple[bool, dict[str, str], int]:
        """Count one request in the current fixed window: (allowed, rate headers, Retry-After)."""
        start = int(now // self.window) * self.window
        if start != self.window_start:
            self.window_start, self.window_hits = start, 0
        self.window_hits += 1
        self.max_window_hits = max(self.max_window_hits, self.window_hits)
        reset = start + self.window
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.limit - self.window_hits, 0)),
            "X-RateLimit-Reset": str(reset),
        }
        return self.window_hits <= self.limit, headers, max(math.ceil(reset - now), 1)

    def summary(self) -> dict[str, Any]:
        gift_sends = sum(v[0] for v in self.gifts.values())
        contact_sends = sum(v[0] for v in self.contacts.values())
        return {
            "limit": self.limit,
            "window": self.window,
            "requests": sum(self.statuses.values()),
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "endpoints": dict(self.endpoints),
            "rate_limited": self.statuses.get(429, 0),
            "max_window_hits": self.max_window_hits,
            "gifts": len(self.gifts),
            "gift_sends": gift_sends,
            "gift_doubles": sum(1 for v in self.gifts.values() if v[0] > 1),
            "contacts": len(self.contacts),
            "contact_sends": contact_sends,
            "contact_doubles": sum(1 for v in self.contacts.values() if v[0] > 1),
            "reversals": sum(self.reversals.values()),
            "reversal_doubles": sum(1 for v in self.reversals.values() if v > 1),
            "recurring_created": len(self.recurring),
            "recurring_cancelled": sum(1 for r in self.recurring_by_id.values() if r["cancelDateTimeUtc"]),
        }


class Fake:
    def __init__(self, latency: Latency, seed: int | None) -> None:
        self.latency = latency
        self.rng = random.Random(seed)
        self.by_token: dict[str, Org] = {}
        self.by_name: dict[str, Org] = {}
        self.next_id = 1000
        self.started = time.time()
        self.statuses: Counter = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.control_cpu_s = 0.0  # spent answering /_fake/*, kept out of the per-request figure

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    # --- the Virtuous paths ---------------------------------------------------------------

    def api(self, org: Org, method: str, parts: list[str], query: dict, body: Any) -> tuple[int, Any]:
        """(status, JSON-able body or None for an empty 200) for one authenticated request."""
        key = (method, *parts[:3])
        now = time.time()
        if key == ("GET", "api", "Organization", "Current"):
            return 200, {
                "organizationName": f"{org.name} (Sandbox)",
                "organizationTimeZone": "America/Chicago",
            }
        if key == ("GET", "api", "Health"):
            return 200, {"status": "Healthy"}
        if key == ("POST", "api", "v2", "Gift") and parts[3:] == ["Transaction"]:
            self._store(org.gifts, [gift_validate(self._object(body), {}, "")], now)
            return 200, None
        if key == ("POST", "api", "v2", "Gift") and parts[3:] == ["Transactions"]:
            body = self._object(body)
            defaults = {
                "transactionSource": body.get("transactionSource"),
                "giftDate": body.get("defaultGiftDate"),
                "giftType": body.get("defaultGiftType"),
            }
            items = validate_all(
                body.get("transactions"), "transactions", lambda i, p: gift_validate(i, defaults, p)
            )
            self._store(org.gifts, items, now)
            return 200, None
        if key == ("POST", "api", "Contact", "Transaction") and len(parts) == 3:
            self._store(org.contacts, [contact_validate(self._object(body), "", "")], now)
            return 200, None
        if key == ("POST", "api", "Contact", "Batch") and len(parts) == 3:
            body = self._object(body)
            source = text(body.get("referenceSource"))
            items = validate_all(
                body.get("contacts"), "contacts", lambda i, p: contact_validate(i, source, p)
            )
            self._store(org.contacts, items, now)
            return 200, None
        if key == ("GET", "api", "Contact", "Find") and len(parts) == 3:
            return 200, self._contact_find(org, query)
        if key[:3] == ("GET", "api", "Contact") and len(parts) == 4:
            record = org.contacts.get((parts[2], parts[3]))
            if record is None or record[2] is None:
                raise not_found("Contact")
            return 200, self._contact_json(record[2], (parts[2], parts[3]))
        if key == ("GET", "api", "Gift") and len(parts) == 3 and parts[2].isdigit():
            pair = org.gift_ids.get(int(parts[2]))
            if pair is None:
                raise not_found("Gift")
            return 200, self._gift_json(org, pair)
        if key[:3] == ("GET", "api", "Gift") and len(parts) == 4:
            record = org.gifts.get((parts[2], parts[3]))
            if record is None or record[2] is None:
                raise not_found("Gift")  # held until the nightly batch, like Virtuous
            return 200, self._gift_json(org, (parts[2], parts[3]))
        if key == ("POST", "api", "Gift", "ReversingTransaction"):
            return 200, self._reverse(org, self._object(body))
        if key == ("POST", "api", "RecurringGift") and len(parts) == 2:
            return 200, self._recurring_create(org, self._object(body))
        if key == ("GET", "api", "RecurringGift") and len(parts) == 3 and parts[2].isdigit():
            record = org.recurring_by_id.get(int(parts[2]))
            if record is None:
                raise not_found("RecurringGift")
            return 200, record
        if key == ("PUT", "api", "RecurringGift", "Cancel") and len(parts) == 4 and parts[3].isdigit():
            record = org.recurring_by_id.get(int(parts[3]))
            if record is None:
                raise not_found("RecurringGift")
            if not record["cancelDateTimeUtc"]:
                record["cancelDateTimeUtc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
                record["status"] = "Cancelled"
            return 200, record
        raise ApiError(
            404, "NOT_FOUND", f"{method} /{'/'.join(parts)} is not served by the load fake (use the sandbox)."
        )

    @staticmethod
    def _object(body: Any) -> dict:
        if not isinstance(body, dict):
            raise invalid(
                [{"field": "body", "code": "INVALID", "message": "The body must be a JSON object."}]
            )
        return body

    @staticmethod
    def _store(table: dict, items: list[tuple[tuple[str, str], dict]], now: float) -> None:
        for pair, fields in items:
            record = table.get(pair)
            if record is None:
                table[pair] = [1, now, None, fields]
            else:
                record[0] += 1

    def _contact_find(self, org: Org, query: dict) -> dict:
        source, ref = query.get("referenceSource", [""])[0], query.get("referenceId", [""])[0]
        email = query.get("email", [""])[0].strip().lower()
        if source and ref:
            record = org.contacts.get((source, ref))
            if record is not None and record[2] is not None:
                return self._contact_json(record[2], (source, ref))
            raise not_found("Contact")
        if email:
            contact_id = org.contact_emails.get(email)
            if contact_id is not None:
                return self._contact_json(contact_id, org.contact_ids[contact_id])
            raise not_found("Contact")
        raise invalid([{"field": "email", "code": "REQUIRED", "message": "email or the reference pair"}])

    @staticmethod
    def _contact_json(contact_id: int, pair: tuple[str, str]) -> dict:
        return {"id": contact_id, "contactReferences": [{"source": pair[0], "id": pair[1]}]}

    @staticmethod
    def _gift_json(org: Org, pair: tuple[str, str]) -> dict:
        count, first, gift_id, fields = org.gifts[pair]
        return {"id": gift_id, "transactionSource": pair[0], "transactionId": pair[1], **fields}

    def _reverse(self, org: Org, body: dict) -> None:
        gift_id = body.get("reversedGiftId")
        errors: list[dict] = []
        valid_day(body.get("giftDate"), "giftDate", errors)
        if not isinstance(gift_id, int) or isinstance(gift_id, bool) or gift_id not in org.gift_ids:
            errors.append(
                {"field": "reversedGiftId", "code": "NOT_FOUND", "message": "not a gift of this org"}
            )
        if errors:
            raise invalid(errors)
        org.reversals[gift_id] += 1

    def _recurring_create(self, org: Org, body: dict) -> dict:
        errors: list[dict] = []
        contact_id = body.get("contactId")
        if not isinstance(contact_id, int) or contact_id not in org.contact_ids:
            errors.append({"field": "contactId", "code": "NOT_FOUND", "message": "not a contact of this org"})
        amount = valid_amount(body.get("amount"), "amount", errors)
        valid_day(body.get("startDate"), "startDate", errors)
        if errors:
            raise invalid(errors)
        pair = (text(body.get("transactionSource")), text(body.get("transactionId")))
        if pair[1] and pair in org.recurring:
            return org.recurring_by_id[org.recurring[pair]]  # idempotent on the schedule's pair
        record = {
            "id": self.new_id(),
            "contactId": contact_id,
            "transactionSource": pair[0],
            "transactionId": pair[1],
            "amount": str(amount),
            "frequency": text(body.get("frequency")) or "Monthly",
            "status": "Active",
            "cancelDateTimeUtc": None,
        }
        org.recurring_by_id[record["id"]] = record
        if pair[1]:
            org.recurring[pair] = record["id"]
        return record

    # --- control --------------------------------------------------------------------------

    def control(self, method: str, parts: list[str], query: dict, body: Any) -> tuple[int, Any]:
        action = parts[1] if len(parts) > 1 else ""
        if method == "POST" and action == "orgs":
            for spec in body["orgs"]:
                org = self.by_name.get(spec["name"])
                if org is None or org.token != spec["token"]:
                    if org is not None:
                        self.by_token.pop(org.token, None)
                    org = Org(name=spec["name"], token=spec["token"])
                org.configure(spec)
                self.by_name[org.name], self.by_token[org.token] = org, org
            return 200, {"orgs": len(self.by_name)}
        if method == "POST" and action == "update":
            for name in body["names"]:
                self.by_name[name].configure(body)
            return 200, {"updated": len(body["names"])}
        if method == "GET" and action == "stats":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            return 200, {
                "pid": os.getpid(),
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "control_cpu_s": self.control_cpu_s,
                "peak_rss_mb": peak_rss_mb(),
                "uptime_s": time.time() - self.started,
                "requests": sum(self.statuses.values()),
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "max_in_flight": self.max_in_flight,
                "orgs": {name: org.summary() for name, org in self.by_name.items()},
            }
        if method == "GET" and action == "usage":
            start, end = float(query["start"][0]), float(query["end"][0])
            return 200, {
                name: sum(1 for t in org.ok_arrivals if start <= t < end)
                for name, org in self.by_name.items()
            }
        if method == "GET" and action == "gifts":
            names = query.get("org") or list(self.by_name)
            return 200, {
                name: [[s, i, v[0], v[1]] for (s, i), v in self.by_name[name].gifts.items()] for name in names
            }
        if method == "POST" and action == "batch":
            promoted = 0
            for org in self.by_name.values():
                promoted += self._batch(org)
            return 200, {"promoted": promoted}
        raise ApiError(404, "NOT_FOUND", "Unknown control path.")

    def _batch(self, org: Org) -> int:
        promoted = 0
        for pair, record in org.contacts.items():
            if record[2] is None:
                record[2] = self.new_id()
                org.contact_ids[record[2]] = pair
                if record[3]["email"]:
                    org.contact_emails.setdefault(record[3]["email"], record[2])
                promoted += 1
        for pair, record in org.gifts.items():
            if record[2] is None:
                record[2] = self.new_id()
                org.gift_ids[record[2]] = pair
                promoted += 1
        return promoted


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM; ru_maxrss would carry the parent's over exec)."""
    with open("/proc/self/status") as status:
        lines = status.read().splitlines()
    for line in lines:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 with Content-Length bodies and keep-alive; one request at a time per connection
    (clients of this fake never pipeline; if one did, later requests wait their turn)."""

    def __init__(self, fake: Fake) -> None:
        self.fake = fake
        self.buffer = bytearray()
        self.busy = False
        self.closed = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                self._send(431, {}, b"", keep_alive=False)
            return
        try:
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
        except ValueError:
            self._send(400, {}, b"Malformed request", keep_alive=False)
            return
        if "transfer-encoding" in headers or length < 0 or length > MAX_BODY:
            self._send(411, {}, b"A Content-Length body is required", keep_alive=False)
            return
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        self.busy = True
        self.fake.in_flight += 1
        self.fake.max_in_flight = max(self.fake.max_in_flight, self.fake.in_flight)
        self._handle(method, target, headers, body, keep_alive)

    def _handle(self, method: str, target: str, headers: dict, body: bytes, keep_alive: bool) -> None:
        fake = self.fake
        url = urlsplit(target)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        query = parse_qs(url.query)
        if parts[0] == "_fake":
            cpu_before = time.process_time()
            try:
                status, data = fake.control(method, parts, query, json.loads(body) if body else None)
            except (KeyError, ValueError, TypeError) as exc:
                status, data = 400, {"error": {"code": "BAD_CONTROL", "message": str(exc)}}
            except ApiError as exc:
                status, data = exc.status, exc.body()
            self._reply(None, status, data, {}, keep_alive)
            fake.control_cpu_s += time.process_time() - cpu_before
            return
        auth = headers.get("authorization", "")
        org = fake.by_token.get(auth[7:]) if auth.startswith("Bearer ") else None
        if org is None:
            fake.statuses[401] += 1
            self._send(401, {"Content-Type": "text/plain; charset=utf-8"}, DENIED, keep_alive)
            return
        arrived = time.time()
        allowed, rate_headers, retry_after = org.hit(arrived)
        delay = (org.latency or fake.latency).draw(fake.rng)
        shown = parts[: 4 if parts[1:2] == ["v2"] else 3]
        org.endpoints[f"{method} /{'/'.join('{id}' if p.isdigit() else p for p in shown)}"] += 1

        def answer() -> None:
            status, data = self._work(org, allowed, retry_after, method, parts, query, body)
            extra = dict(rate_headers)
            if status == 429:
                extra["Retry-After"] = str(retry_after)
            elif status < 300:
                org.ok_arrivals.append(arrived)
            self._reply(org, status, data, extra, keep_alive)

        if delay > 0:
            asyncio.get_running_loop().call_later(delay, answer)
        else:
            answer()

    def _work(self, org, allowed, retry_after, method, parts, query, body) -> tuple[int, Any]:
        if not allowed:
            message = f"Rate limit exceeded. Retry after {retry_after} seconds."
            return 429, {"error": {"code": "RATE_LIMITED", "message": message, "details": []}}
        if org.fail_rate and (org.fail_rate >= 1 or self.fake.rng.random() < org.fail_rate):
            return org.fail_status, {
                "error": {"code": "SERVER_ERROR", "message": "Injected fault.", "details": []}
            }
        try:
            return self.fake.api(org, method, parts, query, json.loads(body) if body else None)
        except ValueError:
            return 400, invalid([{"field": "body", "code": "INVALID_JSON", "message": "not JSON"}]).body()
        except ApiError as exc:
            return exc.status, exc.body()
        except Exception as exc:  # a body shape the checks above missed: answer, never hang the client
            return 500, {
                "error": {"code": "FAKE_ERROR", "message": f"{type(exc).__name__}: {exc}", "details": []}
            }

    def _reply(self, org: Org | None, status: int, data: Any, headers: dict, keep_alive: bool) -> None:
        if org is not None:
            org.statuses[status] += 1
            self.fake.statuses[status] += 1
        payload = b"" if data is None else json.dumps(data, separators=(",", ":")).encode()
        if data is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        self._send(status, headers, payload, keep_alive)

    def _send(self, status: int, headers: dict, payload: bytes, keep_alive: bool) -> None:
        if self.busy:
            self.fake.in_flight -= 1
        if self.closed or self.transport is None:
            return
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        head = [f"HTTP/1.1 {status} {phrase}", f"Content-Length: {len(payload)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if not keep_alive:
            head.append("Connection: close")
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        self.busy = False
        if not keep_alive:
            self.transport.close()
            self.closed = True
        elif self.buffer:
            self._next()


async def serve(host: str, port: int, fake: Fake) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpProtocol(fake), host, port, backlog=4096, reuse_address=True
    )
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with server:
        await stop


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="Median answer time")
    parser.add_argument("--latency-sigma", type=float, default=0.0, help="Lognormal sigma (0: constant)")
    parser.add_argument("--tail-rate", type=float, default=0.0, help="Share of answers drawn from the tail")
    parser.add_argument("--tail-ms", type=float, default=0.0, help="Median of the tail")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # one socket per tenant's client
    latency = Latency(args.latency_ms, args.latency_sigma, args.tail_rate, args.tail_ms)
    asyncio.run(serve(args.host, args.port, Fake(latency, args.seed)))


if __name__ == "__main__":
    main()
