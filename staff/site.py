"""The admin site: login with lockout (django-axes) and a second factor (django-otp).

- The login form asks for a code from users who have a confirmed device; a wrong code counts as a
  failed login for the lockout.
- A user who must have a second factor and has none is sent to the enrolment page before
  anything else of the admin opens; a user with a device whose session was not verified with it
  is sent back to the login page.
"""

from __future__ import annotations

from functools import update_wrapper

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path
from django_otp import login as otp_login
from django_otp import match_token

from staff import second_factor
from tenants.services import Actor


class SecondFactorLoginForm(AdminAuthenticationForm):
    otp_token = forms.CharField(
        required=False,
        label="Authentication code",
        max_length=16,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
        help_text="From your authenticator app, or one of your recovery codes. Leave blank if you "
        "have not set up a second factor.",
    )

    def clean(self):
        cleaned = super().clean()
        user = self.get_user()
        if user is None or not second_factor.has_second_factor(user):
            return cleaned
        token = (cleaned.get("otp_token") or "").strip().replace(" ", "")
        device = match_token(user, token) if token else None
        if device is None:
            # Counted like a wrong password, so guessing codes runs into the lockout too.
            user_login_failed.send(
                sender=__name__, credentials={"username": cleaned.get("username")}, request=self.request
            )
            raise forms.ValidationError(
                "Enter the code from your authenticator app (or a recovery code).", code="otp_invalid"
            )
        user.otp_device = device  # django-otp marks the session verified when the login completes
        return cleaned


class EnrolForm(forms.Form):
    token = forms.CharField(
        label="Code from the app",
        max_length=10,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


class GiftlineAdminSite(admin.AdminSite):
    login_form = SecondFactorLoginForm
    login_template = "admin/staff/login.html"

    def has_permission(self, request) -> bool:
        if not super().has_permission(request):
            return False
        return request.user.is_verified() or not second_factor.has_second_factor(request.user)

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)
        if getattr(view, "__name__", "") in ("logout", "second_factor_view"):
            return inner

        def wrapper(request, *args, **kwargs):
            user = request.user
            if (
                user.is_active
                and user.is_staff
                and not user.is_verified()
                and second_factor.second_factor_required(user)
                and not second_factor.has_second_factor(user)
            ):
                messages.warning(request, "Your account needs a second factor: set it up to continue.")
                return redirect("admin:staff_second_factor")
            return inner(request, *args, **kwargs)

        return update_wrapper(wrapper, inner)

    def index(self, request, extra_context=None):
        """Tenant health is the first page staff see: the admin's home opens it, unless they ask
        for the list of sections (``?sections=1``) or may not view it."""
        if "sections" not in request.GET and request.user.has_perm("sync.view_tenanthealth"):
            try:
                return redirect("admin:sync_tenanthealth_changelist")
            except NoReverseMatch:
                pass
        return super().index(request, extra_context)

    def get_urls(self):
        return [
            path("second-factor/", self.admin_view(self.second_factor_view), name="staff_second_factor"),
            *super().get_urls(),
        ]

    def second_factor_view(self, request):
        """Enrol an authenticator app (QR code or typed secret, confirmed with a code), see how many
        recovery codes are left, and make new ones."""
        user = request.user
        actor = Actor(user=user, via="admin")
        context = {
            **self.each_context(request),
            "title": "Second factor",
            "required": second_factor.second_factor_required(user),
            "enrolled": second_factor.has_second_factor(user),
        }
        codes = None
        form = EnrolForm()
        if (
            request.method == "POST"
            and request.POST.get("action") == "recovery_codes"
            and context["enrolled"]
        ):
            if user.is_verified():
                codes = second_factor.recovery_codes_regenerate(user=user, actor=actor)
        elif request.method == "POST" and not context["enrolled"]:
            form = EnrolForm(request.POST)
            if form.is_valid():
                device = second_factor.totp_pending(user)
                codes = second_factor.totp_confirm(
                    user=user, device=device, token=form.cleaned_data["token"], actor=actor
                )
                if codes is None:
                    form.add_error(
                        "token", "That code does not match. Check the phone's clock and try the next code."
                    )
                else:
                    otp_login(request, device)
                    context["enrolled"] = True
        if not context["enrolled"]:
            device = second_factor.totp_pending(user)
            context.update(
                form=form,
                qr_svg=second_factor.totp_qr_svg(device),
                secret=second_factor.totp_secret(device),
            )
        context.update(codes=codes, codes_left=second_factor.recovery_codes_left(user))
        return TemplateResponse(request, "admin/staff/second_factor.html", context)
