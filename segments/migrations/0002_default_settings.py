from django.db import migrations


def create_default_settings(apps, schema_editor):
    """One settings row with the documented boundaries, for the operator to edit."""
    SegmentSettings = apps.get_model("segments", "SegmentSettings")
    if not SegmentSettings.objects.exists():
        SegmentSettings.objects.create()


class Migration(migrations.Migration):
    dependencies = [("segments", "0001_segments")]

    operations = [migrations.RunPython(create_default_settings, migrations.RunPython.noop)]
