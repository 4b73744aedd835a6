"""The historical import in the console: upload a file, read the validation report, start the run,
watch its gifts go through the queue, sign off.

A mixin of ``ImportRunAdmin`` (``sync.admin.ops``). Every page is scoped by its ``get_queryset``.
The passes run in django-q2 tasks (``sync.tasks.import_run_*``), queued after the request's
transaction commits; the run page polls a small JSON endpoint for their progress. Seeing runs
needs ``sync.view_importrun`` (Customer success has it); uploading, starting and signing off need
``sync.add_importrun`` (Integration admin).
"""

from __future__ import annotations

import re

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django_q.tasks import async_task

from integrations.models import Connection
from sync.models import ImportRun
from sync.ops.imports.console import (
    import_run_resume,
    import_run_signoff_requested,
    import_run_start,
    import_upload_store,
)
from sync.ops.imports.files import ImportFileError, ImportSettings, batch_label_default
from sync.ops.imports.progress import import_run_category_lines
from sync.ops.imports.status import PHASE_WORDS, import_run_report, import_run_status
from sync.pii import MASK, user_sees_pii
from tenants import selectors
from tenants.admin import actor_for

RUN_PERMISSION = "sync.add_importrun"
# The row value a validation error quotes (an e-mail, a name in a project) is hidden without the
# donor-data permission; the category and row number say enough to find it in the file.
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


class ConnectionChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Connection) -> str:
        return f"{obj.tenant.name} · {obj}"


class UploadForm(forms.Form):
    tenant = forms.ModelChoiceField(
        queryset=None, to_field_name="public_id", help_text="Whose gifts these are."
    )
    file = forms.FileField(
        label="File (CSV or XLSX)",
        help_text="One gift per row with the columns donation_id, donor_id, amount, gift_date and "
        "project or project_code (email, first_name, last_name, currency, gift_type, notes optional).",
    )
    connection = ConnectionChoice(
        queryset=None,
        to_field_name="public_id",
        required=False,
        label="Project map from",
        help_text="The connection whose project map (and source name) this import uses.",
    )
    project_map = forms.CharField(
        required=False,
        label="Extra project map lines",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 50, "placeholder": "Spring Appeal, SPRING26"}),
        help_text="One per line: the project as the file names it, a comma, the Virtuous project code. "
        "These add to (or replace) the connection's lines.",
    )
    transaction_source = forms.CharField(
        required=False,
        max_length=100,
        label="Source name",
        help_text="What Virtuous shows as the gifts' source (default: the connection's, else the tenant's).",
    )
    batch_label = forms.CharField(
        max_length=100, help_text="The batch the gifts are filed under in Virtuous; the sign-off compares it."
    )
    currency = forms.CharField(max_length=3, initial="USD", help_text="For rows without a currency.")
    gift_type = forms.CharField(max_length=40, initial="Other", help_text="For rows without a gift type.")

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        tenants = selectors.tenant_list(user=user)
        self.fields["tenant"].queryset = tenants
        self.fields["connection"].queryset = (
            Connection.objects.filter(tenant__in=tenants)
            .select_related("tenant")
            .order_by("tenant__name", "name")
        )
        self.fields["batch_label"].initial = batch_label_default()

    def clean_project_map(self) -> dict[str, str]:
        mapping: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data["project_map"].splitlines(), start=1):
            if not line.strip():
                continue
            source, sep, code = line.rpartition(",")
            if not sep or not source.strip() or not code.strip():
                raise forms.ValidationError(
                    f"Line {number} ({line.strip()!r}): write 'source project, CODE'."
                )
            mapping[source.strip()] = code.strip()
        return mapping

    def clean_currency(self) -> str:
        value = self.cleaned_data["currency"].strip().upper()
        if len(value) != 3 or not value.isalpha():
            raise forms.ValidationError("A three-letter currency code, such as USD.")
        return value

    def clean(self):
        data = super().clean()
        tenant, connection = data.get("tenant"), data.get("connection")
        if tenant is None:
            return data
        if connection is not None and connection.tenant_id != tenant.pk:
            self.add_error("connection", f"This connection is not {tenant.name}'s.")
            return data
        project_map = {**(connection.project_code_map if connection else {}), **data.get("project_map", {})}
        if not project_map:
            self.add_error(
                "project_map",
                "The import needs a project map: choose a connection that has one, or type its lines here.",
            )
        data["settings"] = ImportSettings(
            transaction_source=data.get("transaction_source")
            or (connection.source_name if connection else tenant.source_name),
            batch_label=data.get("batch_label", ""),
            project_map=project_map,
            currency=data.get("currency", "USD"),
            gift_type=data.get("gift_type") or "Other",
        )
        return data


class ImportRunConsoleMixin:
    """The import pages of ``ImportRunAdmin``."""

    change_list_template = "admin/sync/importrun/change_list.html"

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("upload/", wrap(self.upload_view), name="sync_importrun_upload"),
            path("<uuid:public_id>/", wrap(self.run_view), name="sync_importrun_run"),
            path("<uuid:public_id>/progress.json", wrap(self.progress_view), name="sync_importrun_progress"),
            path("<uuid:public_id>/start/", wrap(self.start_view), name="sync_importrun_start"),
            path("<uuid:public_id>/resume/", wrap(self.resume_view), name="sync_importrun_resume"),
            path("<uuid:public_id>/signoff/", wrap(self.signoff_view), name="sync_importrun_signoff"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        if run is None or not self.has_view_permission(request, run):
            raise Http404("No such import run.")
        return HttpResponseRedirect(reverse("admin:sync_importrun_run", args=[run.public_id]))

    def changelist_view(self, request, extra_context=None):
        extra = {"can_upload": request.user.has_perm(RUN_PERMISSION), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    # --- list columns --------------------------------------------------------------------

    def run_link(self, obj: ImportRun):
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:sync_importrun_run", args=[obj.public_id]), obj.source_label
        )

    run_link.short_description = "File"

    def phase_words(self, obj: ImportRun) -> str:
        return PHASE_WORDS.get(obj.phase, obj.get_phase_display())

    phase_words.short_description = "Where it is"

    def signoff_words(self, obj: ImportRun) -> str:
        from sync.ops.imports.status import signoff_in_words

        return signoff_in_words(obj.signoff) if obj.signoff else "—"

    signoff_words.short_description = "Sign-off"

    # --- pages ---------------------------------------------------------------------------

    def _run(self, request, public_id) -> ImportRun:
        run = get_object_or_404(self.get_queryset(request).select_related("tenant"), public_id=public_id)
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        return run

    def _require_run_permission(self, request) -> None:
        if not request.user.has_perm(RUN_PERMISSION):
            raise PermissionDenied

    def upload_view(self, request):
        self._require_run_permission(request)
        form = UploadForm(request.POST or None, request.FILES or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                run, resumed = import_upload_store(
                    tenant=form.cleaned_data["tenant"],
                    name=upload.name,
                    chunks=upload.chunks(),
                    import_settings=form.cleaned_data["settings"],
                    actor=actor_for(request),
                )
            except ImportFileError as exc:
                form.add_error("file", str(exc))
            else:
                if resumed:
                    self.message_user(
                        request,
                        "This file was uploaded before with the same settings: here is its run. "
                        "Nothing is imported twice.",
                        messages.WARNING,
                    )
                else:
                    self._queue("sync.tasks.import_run_validate", run, f"import-validate-{run.public_id}")
                return HttpResponseRedirect(reverse("admin:sync_importrun_run", args=[run.public_id]))
        return TemplateResponse(
            request,
            "admin/sync/importrun/upload.html",
            {
                **self.admin_site.each_context(request),
                "title": "Upload a historical import",
                "form": form,
                "opts": self.model._meta,
            },
        )

    def run_view(self, request, public_id):
        run = self._run(request, public_id)
        report = import_run_report(run)
        errors = run.errors_sample or []
        if not user_sees_pii(request.user):
            errors = [{**e, "detail": QUOTED.sub(MASK, e.get("detail", ""))} for e in errors]
        return TemplateResponse(
            request,
            "admin/sync/importrun/run.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Import: {run.source_label}",
                "opts": self.model._meta,
                "run": run,
                "report": report,
                "errors": errors,
                "errors_cut": report["invalid"] > len(errors),
                "progress": import_run_status(run),
                "category_lines": import_run_category_lines(run),
                "can_run": request.user.has_perm(RUN_PERMISSION),
                "progress_url": reverse("admin:sync_importrun_progress", args=[run.public_id]),
                "dead_letters_url": reverse("admin:sync_deadletter_changelist")
                + f"?tenant={run.tenant.public_id}&resolution__exact=open",
            },
        )

    def progress_view(self, request, public_id):
        return JsonResponse(import_run_status(self._run(request, public_id)))

    def start_view(self, request, public_id):
        run = self._post_run(request, public_id)
        skip = request.POST.get("skip_invalid") == "yes"
        if import_run_start(run=run, skip_invalid=skip, actor=actor_for(request)):
            self._queue("sync.tasks.import_run_enqueue", run, f"import-enqueue-{run.public_id}")
            self.message_user(
                request, "Import started: the gifts are going into the queue.", messages.SUCCESS
            )
        else:
            self.message_user(request, "This import was already started, or is not ready.", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:sync_importrun_run", args=[run.public_id]))

    def resume_view(self, request, public_id):
        run = self._post_run(request, public_id)
        if import_run_resume(run=run, actor=actor_for(request)):
            self._queue("sync.tasks.import_run_validate", run, f"import-validate-{run.public_id}")
            self.message_user(request, "Resumed from the last row checked.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:sync_importrun_run", args=[run.public_id]))

    def signoff_view(self, request, public_id):
        run = self._post_run(request, public_id)
        if run.phase != ImportRun.Phase.COMPLETED:
            self.message_user(request, "Sign off once every gift is in the queue.", messages.WARNING)
        else:
            import_run_signoff_requested(run=run)
            self._queue(
                "sync.tasks.import_run_signoff", run, f"import-signoff-{run.public_id}", request.user.pk
            )
            self.message_user(request, "Comparing with Virtuous: the result appears below.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:sync_importrun_run", args=[run.public_id]))

    def _post_run(self, request, public_id) -> ImportRun:
        if request.method != "POST":
            raise PermissionDenied
        self._require_run_permission(request)
        return self._run(request, public_id)

    @staticmethod
    def _queue(func: str, run: ImportRun, name: str, *args) -> None:
        transaction.on_commit(lambda: async_task(func, run.pk, *args, task_name=name))
