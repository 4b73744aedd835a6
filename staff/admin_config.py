from django.contrib.admin.apps import AdminConfig


class GiftlineAdminConfig(AdminConfig):
    """django.contrib.admin with our site as the default: second factor and its pages."""

    default_site = "staff.site.GiftlineAdminSite"
