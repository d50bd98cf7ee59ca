"""Existing staff keep what they could do when staff rights became Django permissions.

Before, ``is_staff`` alone allowed every registry write. This grants every non-superuser staff
account add/change/delete/view on each registry (models, tools, MCP servers, skills, env
variables, prompt templates) and ``registry.run_code`` (docs/security.md). Staff created
afterwards get only what an administrator gives them.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from registry.staff_rights import registry_codenames


def grant(apps, schema_editor):
    # Permissions are normally created after all migrations ran; make sure they exist now.
    for config in apps.get_app_configs():
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    User = apps.get_model("auth", "User")
    wanted = registry_codenames()
    perms = [
        p for p in Permission.objects.filter(codename__in=[c for _, c in wanted]).select_related("content_type")
        if (p.content_type.app_label, p.codename) in wanted
    ]
    for user in User.objects.filter(is_staff=True, is_superuser=False):
        user.user_permissions.add(*perms)


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0005_allowed_groups_and_run_code"),
        ("templates_app", "0001_initial"),
        ("agents", "0001_initial"),  # agents' rights are granted too: their model must exist first
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
