"""What the console's pages share: payload display with donor data masked, the bulk-action
confirmation page, the status-code filter and the checked ``next`` redirect."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString

from sync.pii import mask_for_display


def pretty(value: Any) -> SafeString:
    return format_html(
        "<pre class='payload'>{}</pre>",
        json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False),
    )


def payload_for(request: HttpRequest, payload: Any) -> SafeString:
    """The payload as shown to this user: donor data masked without ``sync.view_donor_pii``."""
    return pretty(mask_for_display(request.user, payload))


def confirmation(
    request: HttpRequest,
    model_admin: admin.ModelAdmin,
    queryset: QuerySet,
    *,
    action: str,
    title: str,
    question: str,
    form=None,
) -> TemplateResponse:
    """The intermediate page of a bulk action; confirming re-posts the action with post=yes."""
    return TemplateResponse(
        request,
        "admin/sync/action_confirmation.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": title,
            "question": question,
            "objects": list(queryset[:200]),
            "count": queryset.count(),
            "action": action,
            "form": form,
            "opts": model_admin.model._meta,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "selected": [str(pk) for pk in queryset.values_list("pk", flat=True)],
        },
    )


def redirect_next(request: HttpRequest, default: str) -> HttpResponseRedirect:
    """Back to the posted ``next`` when it is a page of this site, else to ``default``.

    Unchecked, ``next`` is an open redirect: a crafted form could send staff on to a look-alike
    login page (``https://evil.example/``, ``//evil.example``) or run a ``javascript:`` URL.
    """
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = default
    return HttpResponseRedirect(target)


class StatusCodeFilter(admin.SimpleListFilter):
    title = "status code"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [
            ("400", "400 Bad request"),
            ("401", "401 Unauthorised"),
            ("403", "403 Forbidden"),
            ("404", "404 Not found"),
            ("409", "409 Conflict"),
            ("422", "422 Unprocessable"),
            ("429", "429 Too many requests"),
            ("5xx", "5xx Server error"),
            ("none", "No response"),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "5xx":
            return queryset.filter(status_code__gte=500, status_code__lt=600)
        if value == "none":
            return queryset.filter(status_code__isnull=True)
        if value and not value.isdigit():
            raise IncorrectLookupParameters(f"Not a status code: {value!r}")
        if value:
            return queryset.filter(status_code=int(value))
        return queryset
