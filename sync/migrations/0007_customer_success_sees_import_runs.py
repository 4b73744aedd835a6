"""Customer success may see historical import runs (their validation report, progress and
sign-off); starting one stays with the Integration admin group (``sync.add_importrun``)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

CUSTOMER_SUCCESS = "Customer success"


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=CUSTOMER_SUCCESS)
    group.permissions.add(Permission.objects.get(content_type__app_label="sync", codename="view_importrun"))


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name=CUSTOMER_SUCCESS).first()
    if group is not None:
        group.permissions.remove(
            *Permission.objects.filter(content_type__app_label="sync", codename="view_importrun")
        )


class Migration(migrations.Migration):
    dependencies = [("sync", "0006_item_dependencies")]

    operations = [migrations.RunPython(grant, revoke)]
