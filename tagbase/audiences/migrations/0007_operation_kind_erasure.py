# The operation kind `erasure`: a customer's personal data erased, removing them from every
# audience (docs/privacy.md). Choices only: no change to the table.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("audiences", "0006_membership_expiry"),
    ]

    operations = [
        migrations.AlterField(
            model_name="operation",
            name="kind",
            field=models.CharField(
                choices=[
                    ("ui", "Web UI"),
                    ("api", "API"),
                    ("cli", "Command line"),
                    ("import", "Import"),
                    ("segment", "Segment"),
                    ("campaign", "Campaign"),
                    ("set", "Set operation"),
                    ("expiry", "Expiry"),
                    ("erasure", "Erasure"),
                    ("undo", "Undo"),
                ],
                max_length=16,
            ),
        ),
    ]
