"""Middleware of the operations endpoints and of the per-request log context.

:class:`OpsEndpointsMiddleware` stands first in ``MIDDLEWARE``: probes and scrapers reach a process
by its address (a pod IP, ``127.0.0.1``) over plain HTTP, so the health and metrics paths are
answered before the host check and the HTTPS redirect would turn them away. None of them shows
anything secret; metrics need a token or an allowed address (``config.metrics.metrics_allowed``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from config import health, metrics
from config.logconfig import log_context

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class OpsEndpointsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.routes: dict[str, Callable[[HttpRequest], HttpResponse]] = {
            "/healthz": health.liveness,
            "/readyz": health.readiness,
            "/readyz/web": lambda request: health.readiness(request, web_only=True),
            settings.METRICS_PATH: metrics.metrics_view,
        }

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = self.routes.get(request.path_info.rstrip("/") or "/")
        if view is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            return HttpResponse("Method not allowed\n", status=405, content_type="text/plain")
        return view(request)


class RequestContextMiddleware:
    """Gives every request an id (the caller's ``X-Request-ID`` when it is a plain token, else a new
    one), puts it in every log line of the request, and returns it in the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        with log_context(request_id=request_id):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response
