"""The dead-letter pages customer success works from: the detail page in words, fix and replay as
a form with a diff to confirm, and open dead letters grouped by cause with one action per group.

A mixin of ``DeadLetterAdmin`` (``sync.admin.outbound``): every page is scoped by its
``get_queryset`` and every change goes through ``sync.outbound.deadletters`` (audited).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from sync.admin import deadletter_fix as fix
from sync.admin.deadletter_text import Cause, cause, field_errors, summary
from sync.models import DeadLetter
from sync.outbound.deadletters import DeadLetterError, dead_letter_discard, dead_letter_replay
from sync.pii import user_sees_pii
from tenants.admin import actor_for

SESSION_KEY = "deadletter-fix:{}"
GROUP_SCAN_LIMIT = 5000  # open dead letters read to build the groups; more is a different emergency


def payload_of(dl: DeadLetter) -> dict[str, Any]:
    payload = dl.item.payload if dl.item_id and dl.item is not None else dl.original_payload
    return payload if isinstance(payload, dict) else {}


class JsonFixForm(forms.Form):
    payload = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 24, "cols": 100, "class": "vLargeTextField"})
    )
    note = forms.CharField(max_length=500, required=False, help_text="What was wrong and what you changed.")

    def clean_payload(self):
        try:
            value = json.loads(self.cleaned_data["payload"])
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("The payload must be a JSON object.")
        return value


class GroupDiscardForm(forms.Form):
    reason = forms.CharField(max_length=500, help_text="Required: someone will ask why.")


@dataclass
class Group:
    tenant: Any
    operation: str
    cause: Cause
    letters: list[DeadLetter] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.tenant.public_id}|{self.operation}|{self.cause.key}"

    @property
    def count(self) -> int:
        return len(self.letters)

    @property
    def noun(self) -> str:
        singular, plural = {
            "gift_transaction": ("gift", "gifts"),
            "contact_transaction": ("donor record", "donor records"),
            "recurring_gift_create": ("recurring gift", "recurring gifts"),
        }.get(self.operation, ("record", "records"))
        return singular if self.count == 1 else plural


class DeadLetterConsoleMixin:
    """Pages and columns added to the dead-letter admin."""

    # --- columns ------------------------------------------------------------------------------

    def get_list_display(self, request):
        """Columns that fit a 1,400-pixel screen: what, why, when, where it stands. Names are
        masked for this viewer (the admin instance is shared between requests, so the columns
        close over the request rather than reading it from ``self``)."""
        show_pii = user_sees_pii(request.user)

        @admin.display(description="Gift or donor")
        def what(obj: DeadLetter) -> str:
            return summary(obj, payload_of(obj), show_pii=show_pii)

        @admin.display(description="Why it failed")
        def why(obj: DeadLetter) -> str:
            return cause(obj, payload_of(obj)).text

        return ("created_at", what, why, "tenant", "status_code", "resolution")

    def get_list_display_links(self, request, list_display):
        return (list_display[1],)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("item")

    def changelist_view(self, request, extra_context=None):
        extra = {"groups_url": reverse("admin:sync_deadletter_groups")}
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    # --- detail -------------------------------------------------------------------------------

    def readable_context(self, request, dl: DeadLetter) -> dict[str, Any]:
        payload = payload_of(dl)
        found = cause(dl, payload)
        return {
            "summary": summary(dl, payload, show_pii=user_sees_pii(request.user)),
            "field_errors": field_errors(dl),
            "cause": found,
        }

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("groups/", wrap(self.groups_view), name="sync_deadletter_groups"),
            path("<uuid:public_id>/fix/", wrap(self.fix_view), name="sync_deadletter_fix"),
            path(
                "<uuid:public_id>/fix/confirm/",
                wrap(self.fix_confirm_view),
                name="sync_deadletter_fix_confirm",
            ),
            path("<uuid:public_id>/fix/json/", wrap(self.fix_json_view), name="sync_deadletter_fix_json"),
            *super().get_urls(),
        ]

    def has_json_edit_permission(self, request) -> bool:
        """Raw JSON is for integration admins (they may change queue items); others get the form."""
        return request.user.has_perm("sync.change_outbounditem") and user_sees_pii(request.user)

    def _fixable(self, request, public_id) -> DeadLetter:
        dl = self._get_open(request, public_id)
        if not user_sees_pii(request.user):
            raise PermissionDenied("Fixing a record needs permission to see donor data.")
        if dl.resolution != DeadLetter.Resolution.OPEN:
            raise PermissionDenied("This dead letter is already resolved.")
        return dl

    def _page(self, request, template: str, title: str, dl: DeadLetter | None = None, **context):
        return TemplateResponse(
            request,
            f"admin/sync/deadletter/{template}",
            {
                **self.admin_site.each_context(request),
                "title": title,
                "dead_letter": dl,
                "opts": self.model._meta,
                **context,
            },
        )

    # --- fix and replay -----------------------------------------------------------------------

    def fix_view(self, request, public_id):
        dl = self._fixable(request, public_id)
        payload = payload_of(dl)
        operation = dl.operation_type
        form_class = fix.record_form_class(operation, payload)
        known = fix.tenant_project_codes(dl.tenant)
        with_designations = operation in fix.HAS_DESIGNATIONS
        posted = request.method == "POST"
        form = form_class(request.POST if posted else None, initial=fix.record_initial(operation, payload))
        formset = (
            fix.DesignationFormSet(
                request.POST if posted else None,
                prefix="designations",
                initial=fix.designations_initial(payload),
            )
            if with_designations
            else None
        )
        if posted and form.is_valid() and (formset is None or formset.is_valid()):
            rows = (
                [f.cleaned_data for f in formset.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
                if formset is not None
                else None
            )
            try:
                new = fix.fixed_payload(
                    dead_letter=dl,
                    payload=payload,
                    data=form.cleaned_data,
                    designations=rows,
                    known_codes=known,
                )
            except fix.FixInvalid as exc:
                for name, message in exc.errors.items():
                    if name == "designations" or name not in form.fields:
                        form.add_error(None, message)
                    else:
                        form.add_error(name, message)
            else:
                if new == payload:
                    form.add_error(None, "Nothing changed. To send it again unchanged, use Replay as-is.")
                else:
                    request.session[SESSION_KEY.format(dl.public_id)] = {
                        "payload": json.loads(json.dumps(new, default=str)),
                        "note": form.cleaned_data["note"],
                    }
                    return HttpResponseRedirect(
                        reverse("admin:sync_deadletter_fix_confirm", args=[dl.public_id])
                    )
        return self._page(
            request,
            "fix.html",
            "Fix and replay",
            dl,
            form=form,
            formset=formset,
            known_codes=known,
            can_edit_json=self.has_json_edit_permission(request),
            **self.readable_context(request, dl),
        )

    def fix_confirm_view(self, request, public_id):
        dl = self._fixable(request, public_id)
        pending = request.session.get(SESSION_KEY.format(dl.public_id))
        if not pending:
            self.message_user(request, "Nothing to confirm: fill in the form first.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:sync_deadletter_fix", args=[dl.public_id]))
        payload = payload_of(dl)
        if request.method == "POST":
            try:
                dead_letter_replay(
                    dead_letter=dl, actor=actor_for(request), payload=pending["payload"], note=pending["note"]
                )
            except DeadLetterError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return HttpResponseRedirect(reverse("admin:sync_deadletter_fix", args=[dl.public_id]))
            request.session.pop(SESSION_KEY.format(dl.public_id), None)
            self.message_user(
                request,
                "Fixed and replayed 1 dead letter: it is back in the queue and will be sent to Virtuous shortly.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(reverse("admin:sync_deadletter_change", args=[dl.pk]))
        return self._page(
            request,
            "fix_confirm.html",
            "Check the change, then replay",
            dl,
            changes=fix.diff(payload, pending["payload"]),
            note=pending["note"],
            **self.readable_context(request, dl),
        )

    def fix_json_view(self, request, public_id):
        dl = self._fixable(request, public_id)
        if not self.has_json_edit_permission(request):
            raise PermissionDenied("Editing the raw payload is for integration admins.")
        payload = payload_of(dl)
        form = JsonFixForm(
            request.POST or None, initial={"payload": json.dumps(payload, indent=2, default=str)}
        )
        if request.method == "POST" and form.is_valid():
            try:
                dead_letter_replay(
                    dead_letter=dl,
                    actor=actor_for(request),
                    payload=form.cleaned_data["payload"],
                    note=form.cleaned_data["note"],
                )
            except DeadLetterError as exc:
                form.add_error("payload", str(exc))
            else:
                self.message_user(request, "Fixed and replayed 1 dead letter.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:sync_deadletter_change", args=[dl.pk]))
        return self._page(
            request,
            "fix_json.html",
            "Fix and replay (JSON)",
            dl,
            form=form,
            **self.readable_context(request, dl),
        )

    # --- grouped by cause ---------------------------------------------------------------------

    def open_groups(self, request) -> list[Group]:
        groups: OrderedDict[str, Group] = OrderedDict()
        open_letters = (
            self.get_queryset(request)
            .filter(resolution=DeadLetter.Resolution.OPEN)
            .select_related("tenant", "item")
            .order_by("-created_at")[:GROUP_SCAN_LIMIT]
        )
        for dl in open_letters:
            found = cause(dl, payload_of(dl))
            group = Group(tenant=dl.tenant, operation=dl.operation_type, cause=found)
            groups.setdefault(group.key, group).letters.append(dl)
        return sorted(groups.values(), key=lambda g: (-g.count, g.tenant.name, g.cause.text))

    def groups_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        groups = self.open_groups(request)
        can_resolve = self.has_resolve_permission(request)
        if request.method == "POST":
            if not can_resolve:
                raise PermissionDenied
            chosen = next((g for g in groups if g.key == request.POST.get("group")), None)
            if chosen is None:
                self.message_user(request, "That group has no open dead letters any more.", messages.WARNING)
            else:
                self._group_act(request, chosen, request.POST.get("do", ""))
            return HttpResponseRedirect(reverse("admin:sync_deadletter_groups"))
        show_pii = user_sees_pii(request.user)
        rows = [
            {
                "group": g,
                "examples": [summary(dl, payload_of(dl), show_pii=show_pii) for dl in g.letters[:3]],
                "known_codes": [c for c in fix.tenant_project_codes(g.tenant) if c != g.cause.project_code]
                if g.cause.kind == "unknown_project"
                else [],
                "list_url": reverse("admin:sync_deadletter_changelist")
                + f"?tenant={g.tenant.public_id}&resolution__exact=open&operation_type__exact={g.operation}",
            }
            for g in groups
        ]
        return self._page(
            request,
            "groups.html",
            "Open dead letters by cause",
            rows=rows,
            can_resolve=can_resolve,
            discard_form=GroupDiscardForm(),
            total=sum(g.count for g in groups),
        )

    def _group_act(self, request, group: Group, do: str) -> None:
        actor = actor_for(request)
        done = failed = 0
        if do == "replay":
            for dl in group.letters:
                try:
                    dead_letter_replay(dead_letter=dl, actor=actor)
                    done += 1
                except DeadLetterError:
                    failed += 1
            verb = "Replayed"
        elif do == "discard":
            form = GroupDiscardForm(request.POST)
            if not form.is_valid():
                self.message_user(request, "Give a reason to discard.", messages.ERROR)
                return
            for dl in group.letters:
                try:
                    dead_letter_discard(dead_letter=dl, actor=actor, reason=form.cleaned_data["reason"])
                    done += 1
                except DeadLetterError:
                    failed += 1
            verb = "Discarded"
        elif do == "change_project" and group.cause.kind == "unknown_project":
            if not user_sees_pii(request.user):
                raise PermissionDenied("Changing records needs permission to see donor data.")
            new_code = request.POST.get("project_code", "").strip()
            known = fix.tenant_project_codes(group.tenant)
            if new_code not in known or new_code == group.cause.project_code:
                self.message_user(
                    request, f"{new_code or 'That'} is not a project code you can use here.", messages.ERROR
                )
                return
            old_code = group.cause.project_code
            for dl in group.letters:
                payload = payload_of(dl)
                key = fix.designations_key(payload)
                rows = []
                for d in payload.get(key) or []:
                    row = dict(d) if isinstance(d, dict) else d
                    if isinstance(row, dict) and row.get("projectCode") == old_code:
                        row["projectCode"] = new_code
                        row.pop("projectId", None)
                    rows.append(row)
                try:
                    dead_letter_replay(
                        dead_letter=dl,
                        actor=actor,
                        payload={**payload, key: rows},
                        note=f"Project code {old_code} changed to {new_code} for the whole group",
                    )
                    done += 1
                except DeadLetterError:
                    failed += 1
            verb = f"Changed project code {old_code} to {new_code} and replayed"
        else:
            self.message_user(request, "Unknown action.", messages.ERROR)
            return
        tail = f"; {failed} could not be (already resolved by someone else)" if failed else ""
        self.message_user(request, f"{verb} {done} {group.noun}{tail}.", messages.SUCCESS)
