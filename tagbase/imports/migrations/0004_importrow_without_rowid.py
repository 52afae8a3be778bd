from django.db import migrations

from tagbase.lib.sqlite_tables import make_without_rowid


def forwards(apps, schema_editor):
    make_without_rowid(schema_editor, "imports_importrow")


class Migration(migrations.Migration):
    dependencies = [("imports", "0003_alter_importrow_job")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
