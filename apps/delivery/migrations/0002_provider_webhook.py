import secrets
import uuid

from django.db import migrations, models

import apps.delivery.models


def fill(apps, schema_editor):
    """Each existing config its own id and secret (a field default would give all rows one)."""
    ProviderConfig = apps.get_model("delivery", "ProviderConfig")
    for config in ProviderConfig.objects.all():
        config.public_id, config.webhook_secret = uuid.uuid4(), secrets.token_urlsafe(32)
        config.save(update_fields=["public_id", "webhook_secret"])


class Migration(migrations.Migration):

    dependencies = [
        ("delivery", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="providerconfig", name="public_id", field=models.UUIDField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name="providerconfig", name="webhook_secret",
            field=models.CharField(editable=False, max_length=64, default=""),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="providerconfig", name="public_id",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
        migrations.AlterField(
            model_name="providerconfig", name="webhook_secret",
            field=models.CharField(default=apps.delivery.models.new_webhook_secret, editable=False,
                                   max_length=64),
        ),
    ]
