from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "Giftline operations"
admin.site.site_title = "Giftline"
admin.site.index_title = "Tenants, syncs and replays"

urlpatterns = [
    # The webhook receivers first: they are most of the traffic, and resolving stops at them.
    path("", include("integrations.urls")),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
]

if settings.SANDBOX_ENABLED:
    urlpatterns.append(path("sandbox/virtuous/", include("integrations.sandbox.urls")))
