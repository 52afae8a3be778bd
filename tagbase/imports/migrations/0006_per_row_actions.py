"""Per-row add/remove files: a staged row's own action (``sign``), and one target per audience
and action (with its split of the report: ``changed`` / ``unchanged``)."""

from django.db import migrations, models

from tagbase.lib.sqlite_tables import make_without_rowid


def targets_take_their_jobs_action(apps, schema_editor):
    """Targets made before this migration did what their job did."""
    ImportTarget = apps.get_model("imports", "ImportTarget")
    ImportTarget.objects.filter(job__action="remove").update(action="remove")


def keep_importrow_without_rowid(apps, schema_editor):
    # Adding a nullable column is an ALTER TABLE on SQLite, which keeps WITHOUT ROWID; this
    # makes sure of it should Django ever rebuild the table instead.
    make_without_rowid(schema_editor, "imports_importrow")


class Migration(migrations.Migration):
    dependencies = [("imports", "0005_timings")]

    operations = [
        migrations.RemoveConstraint(model_name="importtarget", name="import_target_key"),
        migrations.AddField(
            model_name="importrow",
            name="sign",
            field=models.CharField(
                blank=True,
                help_text="Per-row: + or - as the row said; NULL: the job's action",
                max_length=1,
                null=True,
            ),
        ),
        migrations.RunPython(keep_importrow_without_rowid, migrations.RunPython.noop),
        migrations.AddField(
            model_name="importtarget",
            name="action",
            field=models.CharField(
                choices=[("add", "Add"), ("remove", "Remove")], default="add", max_length=8
            ),
        ),
        migrations.AddField(
            model_name="importtarget",
            name="changed",
            field=models.BigIntegerField(default=0, help_text="Added (add) or removed (remove)"),
        ),
        migrations.AddField(
            model_name="importtarget",
            name="unchanged",
            field=models.BigIntegerField(
                default=0, help_text="Already members (add) or not members (remove)"
            ),
        ),
        migrations.AlterField(
            model_name="importjob",
            name="action",
            field=models.CharField(
                choices=[("add", "Add"), ("remove", "Remove")],
                default="add",
                help_text="What every row does, except per-row rows that name their own (+ / -)",
                max_length=8,
            ),
        ),
        migrations.AddConstraint(
            model_name="importtarget",
            constraint=models.UniqueConstraint(
                fields=("job", "key", "action"), name="import_target_key_action"
            ),
        ),
        # Last, after every schema change (PostgreSQL refuses ALTER TABLE on a table with
        # pending trigger events in the same transaction).
        migrations.RunPython(targets_take_their_jobs_action, migrations.RunPython.noop),
    ]
