"""Tenant health in the console: the overview of the user's tenants, a dashboard per tenant with
pause, resume, reconcile and parity, and the onboarding and offboarding flows. Every button calls
a service that writes its audit row."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from integrations.common.secrets import connection_secret_purposes
from integrations.models import Connection
from integrations.registry import provider_get, provider_keys, secrets_required, setup_steps_for
from integrations.services import connection_onboard
from integrations.virtuous.errors import ErrorClass, VirtuousError
from integrations.virtuous.services import (
    connection_webhook_url,
    virtuous_subscription_create,
    virtuous_tenant_onboard,
)
from sync import selectors as sync_selectors
from sync.admin.common import redirect_next
from sync.admin.journey import journey_urls
from sync.models import DeadLetter, TenantHealth
from sync.ops import health as ops_health
from sync.ops.offboard import DATA_ANONYMISE, DATA_DELETE, OffboardError, tenant_offboard
from sync.ops.parity import parity_report
from sync.outbound.confirm import tenant_reconcile
from tenants import selectors as tenant_selectors
from tenants import services as tenant_services
from tenants.admin import actor_for
from tenants.models import Credential, Tenant


class OnboardKeyForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="The customer's name as staff know it.")
    slug = forms.SlugField(max_length=63, help_text="Short id used by operators, e.g. 'harbor-food-bank'.")
    virtuous_base_url = forms.URLField(
        label="Virtuous base URL",
        required=False,
        assume_scheme="https",
        help_text="Leave blank for the production Virtuous API.",
    )
    api_key = forms.CharField(
        label="Virtuous API key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="The Virtuous API key the customer gave you. It is checked live, then stored encrypted.",
    )

    def clean_slug(self):
        slug = self.cleaned_data["slug"]
        if Tenant.objects.filter(slug=slug).exists():
            raise forms.ValidationError("A tenant with this slug exists already.")
        return slug


class RolloutForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = ("inbound_mode", "conflict_policy", "batching_enabled", "batch_size")


def connection_form_class(provider: str) -> type[forms.Form]:
    """A form with the provider's own fields: capture modes it supports, settings, write-only secrets."""
    spec = provider_get(provider)
    fields: dict[str, forms.Field] = {
        "name": forms.CharField(max_length=100, required=False),
        "capture_mode": forms.ChoiceField(
            choices=[(m, Connection.CaptureMode(m).label) for m in spec.capture_modes]
        ),
    }
    for key in spec.settings_fields:
        fields[f"setting_{key}"] = forms.CharField(label=key.replace("_", " ").capitalize(), required=False)
    for purpose in spec.secret_purposes:
        fields[f"secret_{purpose}"] = forms.CharField(
            label=Credential.Purpose(purpose).label,
            required=False,
            widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
            help_text="Write-only: stored encrypted, never shown again.",
        )

    def clean(self):
        """Refuse to save a connection without the secrets its capture mode cannot work without."""
        data = super(form_class, self).clean()
        for purpose in secrets_required(spec, data.get("capture_mode", "")):
            if not (data.get(f"secret_{purpose}") or "").strip():
                self.add_error(
                    f"secret_{purpose}",
                    f"Needed for {Connection.CaptureMode(data['capture_mode']).label.lower()}: "
                    f"without it {spec.label} cannot be {'read' if purpose != 'webhook_secret' else 'verified'}.",
                )
        return data

    form_class = type(f"{provider.title()}ConnectionForm", (forms.Form,), {**fields, "clean": clean})
    return form_class


class OffboardForm(forms.Form):
    data = forms.ChoiceField(
        choices=[
            (DATA_DELETE, "Delete the tenant's sync data"),
            (DATA_ANONYMISE, "Keep the rows, blank donor data"),
        ],
        widget=forms.RadioSelect,
        initial=DATA_DELETE,
    )
    confirm_slug = forms.CharField(help_text="Type the tenant's slug to confirm.")


@admin.register(TenantHealth)
class TenantHealthAdmin(admin.ModelAdmin):
    """Overview of all the user's tenants, a dashboard per tenant, and the onboarding flow."""

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return tenant_selectors.tenant_list(user=request.user)

    def _tenant(self, request, public_id) -> Tenant:
        try:
            return tenant_selectors.tenant_get(public_id=public_id, user=request.user)
        except Tenant.DoesNotExist as exc:
            raise Http404("No such tenant.") from exc

    def _render(self, request, template, title, **context):
        return TemplateResponse(
            request,
            f"admin/sync/tenanthealth/{template}",
            {**self.admin_site.each_context(request), "title": title, "opts": self.model._meta, **context},
        )

    def _to_dashboard(self, tenant: Tenant):
        return HttpResponseRedirect(reverse("admin:sync_tenanthealth_change", args=[tenant.public_id]))

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self.overview_view), name="sync_tenanthealth_changelist"),
            path("onboard/", wrap(self.onboard_view), name="sync_tenanthealth_onboard"),
            path("<uuid:public_id>/", wrap(self.dashboard_view), name="sync_tenanthealth_change"),
            path("<uuid:public_id>/setup/", wrap(self.setup_view), name="sync_tenanthealth_setup"),
            path("<uuid:public_id>/pause/", wrap(self.pause_view), name="sync_tenanthealth_pause"),
            path("<uuid:public_id>/resume/", wrap(self.resume_view), name="sync_tenanthealth_resume"),
            path(
                "<uuid:public_id>/reconcile/", wrap(self.reconcile_view), name="sync_tenanthealth_reconcile"
            ),
            path("<uuid:public_id>/offboard/", wrap(self.offboard_view), name="sync_tenanthealth_offboard"),
            path("<uuid:public_id>/parity/", wrap(self.parity_view), name="sync_tenanthealth_parity"),
            *journey_urls(self),
        ]

    def parity_view(self, request, public_id):
        """Webhook vs poll captures of one connection over a chosen window (read-only)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        tenant = self._tenant(request, public_id)
        connections = list(Connection.objects.filter(tenant=tenant).order_by("provider", "pk"))
        chosen = next((c for c in connections if str(c.public_id) == request.GET.get("connection")), None)
        chosen = chosen or next((c for c in connections if c.provider == "virtuous"), None)
        try:
            days = min(max(float(request.GET.get("days", 7)), 0.01), 90.0)
        except ValueError:
            days = 7.0
        report = None
        if chosen is not None:
            until = timezone.now()
            report = parity_report(connection=chosen, since=until - timedelta(days=days), until=until)
        return self._render(
            request,
            "parity.html",
            f"Webhook/poll parity of {tenant.name}",
            tenant=tenant,
            connections=connections,
            chosen=chosen,
            days=days,
            report=report,
        )

    def overview_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows = ops_health.tenant_health_overview(tenants=self.get_queryset(request))
        return self._render(
            request,
            "overview.html",
            "Tenant health",
            rows=[{"row": r, "concerns": concern_links(r.tenant, r.concerns)} for r in rows],
            healthy=sum(not r.needs_attention for r in rows),
            can_onboard=request.user.has_perms(["tenants.add_tenant", "tenants.add_credential"]),
        )

    def dashboard_view(self, request, public_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        tenant = self._tenant(request, public_id)
        health = sync_selectors.tenant_health(tenant=tenant)
        concerns = ops_health.tenant_concerns(tenants=[tenant])[tenant.pk]
        return self._render(
            request,
            "dashboard.html",
            f"Health of {tenant.name}",
            tenant=tenant,
            health=health,
            concerns=concern_links(tenant, concerns),
            can_operate=request.user.has_perm("tenants.change_tenant"),
            can_offboard=request.user.has_perm("tenants.delete_tenant"),
            can_setup=request.user.has_perm("tenants.add_credential"),
        )

    def _require(self, request, *perms: str):
        if not request.user.has_perms(perms):
            raise PermissionDenied

    def pause_view(self, request, public_id):
        self._require(request, "tenants.change_tenant")
        tenant = self._tenant(request, public_id)
        if request.method == "POST":
            reason = request.POST.get("reason", "").strip() or f"Paused by {request.user.get_username()}"
            n = tenant_services.tenant_pause(tenant=tenant, reason=reason, actor=actor_for(request))
            self.message_user(request, f"Paused {int(n)} tenant(s).", messages.SUCCESS)
        return self._to_dashboard(tenant)

    def resume_view(self, request, public_id):
        self._require(request, "tenants.change_tenant")
        tenant = self._tenant(request, public_id)
        if request.method == "POST":
            n = tenant_services.tenant_resume(tenant=tenant, actor=actor_for(request))
            self.message_user(request, f"Resumed {int(n)} tenant(s).", messages.SUCCESS)
        return self._to_dashboard(tenant)

    def reconcile_view(self, request, public_id):
        self._require(request, "tenants.change_tenant")
        tenant = self._tenant(request, public_id)
        if request.method == "POST":
            try:
                counts = tenant_reconcile(tenant=tenant, actor=actor_for(request))
            except VirtuousError as exc:
                self.message_user(request, f"Reconciliation could not run: {exc}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    "Reconciliation: checked {checked}, recovered {recovered}, still waiting {waiting}, "
                    "needs review {needs_review}.".format(**counts),
                    messages.SUCCESS,
                )
        return redirect_next(request, reverse("admin:sync_tenanthealth_change", args=[tenant.public_id]))

    def onboard_view(self, request):
        self._require(request, "tenants.add_tenant", "tenants.add_credential")
        form = OnboardKeyForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                tenant = virtuous_tenant_onboard(
                    slug=data["slug"],
                    name=data["name"],
                    api_key=data["api_key"],
                    base_url=data["virtuous_base_url"],
                    actor=actor_for(request),
                )
            except VirtuousError as exc:
                field, message = onboarding_error(exc)
                form.add_error(field, message)
            else:
                self.message_user(
                    request,
                    f"Key accepted for {tenant.virtuous_org_name} (time zone {tenant.virtuous_time_zone}).",
                    messages.SUCCESS,
                )
                self._subscribe(request, tenant)
                return HttpResponseRedirect(reverse("admin:sync_tenanthealth_setup", args=[tenant.public_id]))
        return self._render(
            request, "onboard.html", "Onboard a customer", form=form, try_offer=_try_onboarding_offer()
        )

    def _subscribe(self, request, tenant: Tenant) -> None:
        try:
            virtuous_subscription_create(
                tenant=tenant, base_url=settings.PUBLIC_BASE_URL, actor=actor_for(request)
            )
        except VirtuousError as exc:
            self.message_user(request, f"The Virtuous webhook subscription failed: {exc}", messages.ERROR)
        else:
            self.message_user(request, "Created the Virtuous webhook subscription.", messages.SUCCESS)

    def setup_view(self, request, public_id):
        self._require(request, "tenants.change_tenant", "tenants.add_credential")
        tenant = self._tenant(request, public_id)
        provider = request.GET.get("provider") or request.POST.get("provider") or ""
        sources = [p for p in provider_keys() if provider_get(p).kind == "source"]
        if provider and provider not in sources:
            raise Http404("Unknown provider.")
        connection_form = (
            connection_form_class(provider)(
                request.POST if request.POST.get("step") == "connection" else None
            )
            if provider
            else None
        )
        rollout = RolloutForm(
            request.POST if request.POST.get("step") == "rollout" else None, instance=tenant
        )
        step = request.POST.get("step")
        if request.method == "POST":
            if step == "subscribe":
                self._subscribe(request, tenant)
                return HttpResponseRedirect(request.path)
            if step == "connection" and connection_form.is_valid():
                data = connection_form.cleaned_data
                try:
                    connection = connection_onboard(
                        tenant=tenant,
                        provider=provider,
                        capture_mode=data["capture_mode"],
                        name=data["name"],
                        settings={
                            k[len("setting_") :]: v for k, v in data.items() if k.startswith("setting_")
                        },
                        secrets={
                            k[len("secret_") :]: v for k, v in data.items() if k.startswith("secret_") and v
                        },
                        actor=actor_for(request),
                    )
                except ValueError as exc:
                    connection_form.add_error(None, str(exc))
                else:
                    self.message_user(
                        request, f"Added the {provider_get(provider).label} connection.", messages.SUCCESS
                    )
                    return HttpResponseRedirect(f"{request.path}#connection-{connection.public_id}")
            if step == "rollout" and rollout.is_valid():
                tenant_services.tenant_update(
                    tenant=tenant,
                    actor=actor_for(request),
                    changes={f: rollout.cleaned_data[f] for f in rollout.changed_data},
                )
                self.message_user(request, f"Saved {len(rollout.changed_data)} setting(s).", messages.SUCCESS)
                return HttpResponseRedirect(request.path)
        connections = [
            {
                "connection": c,
                "spec": provider_get(c.provider),
                "url": connection_webhook_url(connection=c, base_url=settings.PUBLIC_BASE_URL),
                "secrets": _secret_states(tenant, c),
                "steps": setup_steps_for(c),
            }
            for c in Connection.objects.filter(tenant=tenant).order_by("created_at")
        ]
        return self._render(
            request,
            "setup.html",
            f"Set up {tenant.name}",
            tenant=tenant,
            sources=[(p, provider_get(p).label) for p in sources],
            provider=provider,
            provider_label=provider_get(provider).label if provider else "",
            connection_form=connection_form,
            rollout=rollout,
            connections=connections,
        )

    def offboard_view(self, request, public_id):
        self._require(request, "tenants.delete_tenant")
        tenant = self._tenant(request, public_id)
        form = OffboardForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            if form.cleaned_data["confirm_slug"] != tenant.slug:
                form.add_error("confirm_slug", "That is not this tenant's slug.")
            else:
                try:
                    result = tenant_offboard(
                        tenant=tenant, actor=actor_for(request), data=form.cleaned_data["data"]
                    )
                except (OffboardError, VirtuousError) as exc:
                    self.message_user(request, str(exc), messages.ERROR)
                else:
                    self.message_user(
                        request,
                        f"Offboarded {tenant.name}: webhook {result.webhook}, {result.credentials_retired} "
                        f"credential(s) retired, {result.connections_stopped} connection(s) stopped, "
                        f"{sum(result.rows.values())} row(s) {form.cleaned_data['data']}d.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(reverse("admin:sync_tenanthealth_changelist"))
        counts = {
            "connections": Connection.objects.filter(tenant=tenant).count(),
            "credentials": Credential.objects.filter(tenant=tenant)
            .exclude(state=Credential.State.RETIRED)
            .count(),
            "dead_letters": DeadLetter.objects.filter(tenant=tenant).aggregate(n=Count("id"))["n"],
        }
        return self._render(
            request, "offboard.html", f"Offboard {tenant.name}", tenant=tenant, form=form, counts=counts
        )


def _try_onboarding_offer() -> dict | None:
    """With the sandbox on and make run's demo prepared: the values that onboard its ready
    organisation, offered on the onboarding page so anyone can try it in a minute."""
    if not settings.SANDBOX_ENABLED:
        return None
    from integrations.sandbox.demo import TRY_TENANT_SLUG, try_onboarding_offer

    taken = set(Tenant.objects.filter(slug__startswith=TRY_TENANT_SLUG).values_list("slug", flat=True))
    offer = try_onboarding_offer(taken)
    if offer is None:
        return None
    return {
        "name": offer.name,
        "slug": offer.slug,
        "api_key": offer.api_key,
        "organization": offer.organization,
        "base_url": settings.PUBLIC_BASE_URL.rstrip("/") + "/sandbox/virtuous",
    }


def _secret_states(tenant: Tenant, connection: Connection) -> list[tuple[str, str]]:
    """Each of the connection's secrets: "set", "missing" (its capture mode needs it) or "unused"
    (only another capture mode would); never their values or last digits."""
    spec = provider_get(connection.provider)
    have = connection_secret_purposes(connection)
    needed = secrets_required(spec, connection.capture_mode)
    return [
        (Credential.Purpose(p).label, "set" if p in have else "missing" if p in needed else "unused")
        for p in spec.secret_purposes
    ]


def onboarding_error(exc: VirtuousError) -> tuple[str, str]:
    """What happened, in words, and the field it belongs next to (no internal class labels)."""
    status = exc.status_code
    if status in (401, 403):
        return "api_key", "Virtuous refused this key. Check it was copied whole, and that it is still active."
    if status is None and exc.error_class == ErrorClass.TRANSIENT:
        return (
            "virtuous_base_url",
            "Virtuous could not be reached at this address (no answer). Check the address, or try again "
            "in a minute if Virtuous is having trouble.",
        )
    if status is None:
        return "virtuous_base_url", f"This Virtuous address cannot be used: {exc.message}"
    if status == 429:
        return "api_key", "Virtuous is limiting requests for this key right now; try again in a minute."
    if status >= 500:
        return (
            "virtuous_base_url",
            f"Virtuous had a problem answering (error {status}); try again in a minute.",
        )
    if status == 404:
        return "virtuous_base_url", "No Virtuous API answered at this address. Leave it blank for production."
    return "api_key", f"Virtuous did not accept this key: {exc.message}"


def concern_links(tenant: Tenant, concerns: list[ops_health.Concern]) -> list[dict]:
    """Each concern with the page that lists its rows."""
    t = f"tenant={tenant.public_id}"
    dashboard = reverse("admin:sync_tenanthealth_change", args=[tenant.public_id])
    lists = {
        ops_health.PAUSED: dashboard,
        ops_health.CONNECTION_FAILING: f"{dashboard}#connections",
        ops_health.CONNECTION_PAUSED: f"{dashboard}#connections",
        ops_health.DEAD_LETTERS: f"{reverse('admin:sync_deadletter_changelist')}?{t}&resolution__exact=open",
        ops_health.INBOUND_REVIEW: f"{reverse('admin:integrations_inboundevent_changelist')}?{t}"
        "&status__exact=needs_review",
        ops_health.INBOUND_FAILED: f"{reverse('admin:integrations_inboundevent_changelist')}?{t}"
        "&status__in=failed,malformed",
        ops_health.ITEMS_NEED_REVIEW: f"{reverse('admin:sync_outbounditem_changelist')}?{t}"
        "&state__exact=needs_review",
        ops_health.UNCONFIRMED: f"{reverse('admin:sync_outbounditem_changelist')}?{t}&state__exact=submitted",
        ops_health.WAITING: f"{reverse('admin:sync_outbounditem_changelist')}?{t}&state__exact=waiting",
        ops_health.STALE_CHECKPOINT: f"{reverse('admin:sync_synccheckpoint_changelist')}?{t}",
        ops_health.SIGNATURE_FAILURES: f"{reverse('admin:integrations_inboundevent_changelist')}?{t}"
        "&status__exact=rejected",
        ops_health.QUEUE_STALLED: f"{reverse('admin:sync_outbounditem_changelist')}?{t}&state__exact=pending",
    }
    return [{"concern": c, "url": lists.get(c.kind, dashboard)} for c in concerns]
