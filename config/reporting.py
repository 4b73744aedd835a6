"""Error reports and DEBUG pages that hide credentials held in local variables."""

from __future__ import annotations

from django.views.debug import SafeExceptionReporterFilter


class SecretSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django hides sensitive settings and request data, and locals only in functions marked
    ``@sensitive_variables``. This also hides, in every frame, locals whose names say what they
    hold (secret, token, key, password, signature, auth): any code path may hold a credential."""

    def get_traceback_frame_variables(self, request, tb_frame):
        return [
            (name, self.cleansed_substitute if self.hidden_settings.search(name) else value)
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]
