# The erasure record: which customer's personal data was erased, when, by whom, and what was
# removed (counts only; docs/privacy.md).

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('customers', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Erasure',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('sc_id', models.BigIntegerField(unique=True)),
                ('erased_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ('actor_label', models.CharField(blank=True, default='', help_text='User name or API token name at the time', max_length=150)),
                ('counts', models.JSONField(blank=True, default=dict, help_text='What was removed or masked, per app: numbers only')),
                ('idempotency_key', models.CharField(blank=True, default='', max_length=200)),
                ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-erased_at', '-id'],
                'constraints': [models.UniqueConstraint(condition=models.Q(('idempotency_key', ''), _negated=True), fields=('actor_label', 'idempotency_key'), name='erasure_idempotency_key')],
            },
        ),
    ]
