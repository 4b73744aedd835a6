"""Reference views for the ingest benchmark; served only under bench.settings.

``bare_ok`` is Django's floor (routing, middleware, a response). ``minimal_capture`` is the
irreducible work of capture-then-ack: check the Stripe-style HMAC over the raw body, take the
event id, and INSERT ... ON CONFLICT DO NOTHING the body in one committed statement.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

CAPTURE_TABLE = "bench_capture"
SECRET = os.environ.get("BENCH_WEBHOOK_SECRET", "").encode()


@csrf_exempt
def bare_ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@csrf_exempt
def minimal_capture(request: HttpRequest) -> HttpResponse:
    body = request.body
    parts = dict(p.split("=", 1) for p in request.headers.get("Stripe-Signature", "").split(",") if "=" in p)
    expected = hmac.new(SECRET, parts.get("t", "").encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parts.get("v1", "")):
        return HttpResponse("bad signature", status=400)
    event_id = json.loads(body)["id"]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {CAPTURE_TABLE} (event_id, body) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            [event_id, body],
        )
    return HttpResponse("ok")
