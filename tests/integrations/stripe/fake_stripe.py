"""A stand-in for Stripe's list endpoints, served through ``responses``.

It follows Stripe's list contract: newest first, ``limit``, ``starting_after`` (older page),
``ending_before`` (the page just newer than the cursor), ``created[gte]``, ``types[]``, and a
``resource_missing`` error for an unknown cursor. ``fail_after`` makes a call fail with a 500.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import responses

API = "https://api.stripe.com"


class FakeStripe:
    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.objects: dict[str, list[dict]] = {"events": [], "charges": []}
        self.calls: list[dict] = []
        self.fail_on_call: int | None = None
        for resource in self.objects:
            rsps.add_callback(
                responses.GET, re.compile(rf"{API}/v1/{resource}(\?.*)?$"), callback=self._handler(resource)
            )

    def add(self, resource: str, obj: dict) -> None:
        """Add an object; the list stays newest first (ties keep the later-added first)."""
        self.objects[resource].append(obj)
        self.objects[resource].sort(key=lambda o: -o["created"])

    def _handler(self, resource: str):
        def handle(request):
            query = {k: v[-1] for k, v in parse_qs(urlsplit(request.url).query).items()}
            self.calls.append(
                {"resource": resource, "query": query, "auth": request.headers.get("Authorization")}
            )
            if self.fail_on_call is not None and len(self.calls) >= self.fail_on_call:
                return (
                    500,
                    {},
                    json.dumps({"error": {"type": "api_error", "message": "Stripe is having a moment"}}),
                )
            rows = [o for o in self.objects[resource] if o["created"] >= int(query.get("created[gte]", 0))]
            types = {v for k, v in query.items() if k.startswith("types[")}
            if types:
                rows = [o for o in rows if o["type"] in types]
            limit = int(query.get("limit", 10))
            ids = [o["id"] for o in rows]
            for cursor in ("starting_after", "ending_before"):
                if cursor in query and query[cursor] not in ids:
                    error = {"type": "invalid_request_error", "code": "resource_missing", "param": cursor}
                    return (
                        400,
                        {},
                        json.dumps({"error": {**error, "message": f"No such object: {query[cursor]}"}}),
                    )
            if "starting_after" in query:
                older = rows[ids.index(query["starting_after"]) + 1 :]
                page, more = older[:limit], len(older) > limit
            elif "ending_before" in query:
                newer = rows[: ids.index(query["ending_before"])]
                page, more = newer[-limit:], len(newer) > limit
            else:
                page, more = rows[:limit], len(rows) > limit
            body = {"object": "list", "url": f"/v1/{resource}", "has_more": more, "data": page}
            return 200, {"Request-Id": "req_fake"}, json.dumps(body)

        return handle


def charge(
    number: int, *, created: int, payment_intent: str | None = None, status: str = "succeeded"
) -> dict:
    return {
        "id": f"ch_{number:06d}",
        "object": "charge",
        "amount": 1000 + number,
        "amount_captured": 1000 + number,
        "amount_refunded": 0,
        "billing_details": {
            "email": f"donor{number}@example.org",
            "name": f"Donor {number}",
            "address": None,
        },
        "captured": status == "succeeded",
        "created": created,
        "currency": "usd",
        "customer": f"cus_{number:06d}",
        "livemode": False,
        "metadata": {},
        "payment_intent": payment_intent or f"pi_{number:06d}",
        "payment_method_details": {"type": "card"},
        "refunded": False,
        "status": status,
    }
