from django.urls import path

from integrations import views

app_name = "integrations"
urlpatterns = [
    path("hooks/<uuid:token>/", views.receive, name="receive"),
    # Mailchimp-style sources authenticate with a secret in the URL path.
    path("hooks/<uuid:token>/<str:secret>/", views.receive, name="receive-with-secret"),
]
