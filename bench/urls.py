"""The platform's URLs plus the ingest benchmark's references under /bench/."""

from django.urls import include, path

from bench import views

urlpatterns = [
    path("bench/ok/", views.bare_ok),
    path("bench/capture/", views.minimal_capture),
    path("", include("config.urls")),
]
