"""Webhook receive views: verify, store raw, acknowledge. Nothing else happens in the request.

These are the only CSRF-exempt views in the project. The connection (and so the tenant) comes
from the unguessable token in the URL, never from the payload.
"""

from __future__ import annotations

from uuid import UUID

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from config.logconfig import log_context_bind
from config.metrics import webhook_observed
from integrations.common.secrets import connection_secrets
from integrations.models import InboundEvent
from integrations.registry import provider_get
from integrations.selectors import connection_for_webhook
from integrations.services import ConnectionChanged, inbound_event_receive
from integrations.types import WebhookRequest


@csrf_exempt
@webhook_observed
def receive(request: HttpRequest, token: UUID, secret: str = "") -> HttpResponse:
    # A POST may be stored for the connection as this process last read it: the INSERT checks
    # that it still matches. Handshakes always read it afresh.
    connection = connection_for_webhook(token=token, reuse=request.method == "POST")
    if connection is None:
        return JsonResponse({"error": "unknown webhook URL"}, status=404)
    request.giftline_provider = connection.provider  # metrics label
    log_context_bind(tenant=connection.tenant.slug, connection=connection.public_id)
    max_bytes = settings.WEBHOOK_MAX_BODY_BYTES
    declared = _declared_length(request)
    if declared is not None and declared > max_bytes:
        body, size = b"", declared  # not read at all: nothing of an oversized body is kept
    else:
        body = request.read(max_bytes + 1)  # one byte more than the limit tells "too large"
        size = len(body)
        if size > max_bytes:
            body = b""
    hook = WebhookRequest(
        body=body,
        headers=dict(request.headers),
        content_type=request.content_type or "",
        query=request.GET.dict(),
        path_secret=secret,
    )
    spec = provider_get(connection.provider)
    if request.method in ("GET", "HEAD"):
        if spec.handshake is None:
            return JsonResponse({"error": "this webhook URL accepts POST only"}, status=405)
        status, text = spec.handshake(hook, connection, connection_secrets(connection))
        return HttpResponse(text, status=status, content_type="text/plain")
    if request.method != "POST":
        return JsonResponse({"error": "this webhook URL accepts POST only"}, status=405)
    delivery = {"request": hook, "remote_addr": request.META.get("REMOTE_ADDR"), "max_bytes": max_bytes}
    try:
        receipt = inbound_event_receive(connection=connection, body_size=size, **delivery)
    except ConnectionChanged:
        connection = connection_for_webhook(token=token)
        if connection is None:
            return JsonResponse({"error": "unknown webhook URL"}, status=404)
        receipt = inbound_event_receive(connection=connection, body_size=size, **delivery)
    event = receipt.event  # None: rejected and over the per-minute cap, so counted but not stored
    return JsonResponse(
        {
            "status": event.status if event else InboundEvent.Status.REJECTED,
            "id": str(event.public_id) if event else None,
            "detail": receipt.message,
        },
        status=receipt.http_status,
    )


def _declared_length(request: HttpRequest) -> int | None:
    """The Content-Length the sender declared; None when absent or not a number."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    return length if length >= 0 else None
