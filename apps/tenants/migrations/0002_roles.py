"""The three staff roles as Django groups (definitions in apps/tenants/roles.py)."""

from django.db import migrations


def create_roles(apps, schema_editor):
    from apps.tenants.roles import roles_sync

    roles_sync(apps)


def delete_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=["Marketer", "Support", "Tenant admin"]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0001_initial"),
        ("recipients", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create_roles, delete_roles)]
