from django.db import migrations


def add_roles(apps, schema_editor):
    Role = apps.get_model("b2b", "Role")
    for name in ["採購", "財務", "倉管"]:
        Role.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [("b2b", "0001_initial")]
    operations = [migrations.RunPython(add_roles, migrations.RunPython.noop)]
