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
from integrations.models import Connection
from integrations.registry import provider_get
from integrations.services import connection_secrets, inbound_event_receive
from integrations.types import WebhookRequest


@csrf_exempt
@webhook_observed
def receive(request: HttpRequest, token: UUID, secret: str = "") -> HttpResponse:
    connection = (
        Connection.objects.select_related("tenant").filter(webhook_token=token, is_active=True).first()
    )
    if connection is None:
        return JsonResponse({"error": "unknown webhook URL"}, status=404)
    request.giftline_provider = connection.provider  # metrics label
    log_context_bind(tenant=connection.tenant.slug, connection=connection.public_id)
    max_bytes = settings.WEBHOOK_MAX_BODY_BYTES
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    body = request.read(max_bytes + 1) if declared <= max_bytes * 4 else b"x" * (max_bytes + 1)
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
    receipt = inbound_event_receive(
        connection=connection, request=hook, remote_addr=request.META.get("REMOTE_ADDR"), max_bytes=max_bytes
    )
    return JsonResponse(
        {"status": receipt.event.status, "id": str(receipt.event.public_id), "detail": receipt.message},
        status=receipt.http_status,
    )
