from django.db import migrations

from tagbase.lib.sqlite_tables import make_without_rowid


def forwards(apps, schema_editor):
    make_without_rowid(schema_editor, "audiences_membership")


class Migration(migrations.Migration):
    dependencies = [
        ("audiences", "0002_alter_membership_audience_alter_membership_customer_and_more"),
    ]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
