# Membership expiry (docs/expiry.md): an audience's default time-to-live, a membership's expiry
# (with a partial index: only rows that have one), the expiry in the removal ledger, and the
# operation kind `expiry`.

from django.db import migrations, models

from tagbase.lib.sqlite_tables import make_without_rowid


def keep_without_rowid(apps, schema_editor):
    # A nullable column without a default is added with ALTER TABLE ADD COLUMN, which keeps the
    # table WITHOUT ROWID on SQLite; should Django ever rebuild it instead, restore the shape.
    make_without_rowid(schema_editor, "audiences_membership")


class Migration(migrations.Migration):

    dependencies = [
        ('audiences', '0005_exportschedule'),
        ('customers', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='audience',
            name='member_ttl_days',
            field=models.PositiveIntegerField(blank=True, help_text='Default time-to-live of a membership set by an add, in days (empty: none)', null=True),
        ),
        migrations.AddField(
            model_name='membership',
            name='expires_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='removedmembership',
            name='expires_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='operation',
            name='kind',
            field=models.CharField(choices=[('ui', 'Web UI'), ('api', 'API'), ('cli', 'Command line'), ('import', 'Import'), ('segment', 'Segment'), ('campaign', 'Campaign'), ('set', 'Set operation'), ('expiry', 'Expiry'), ('undo', 'Undo')], max_length=16),
        ),
        migrations.AddIndex(
            model_name='membership',
            index=models.Index(condition=models.Q(('expires_at__isnull', False)), fields=['audience', 'expires_at'], name='membership_expiry_idx'),
        ),
        migrations.RunPython(keep_without_rowid, migrations.RunPython.noop),
    ]
