# The slot count's index (apps/messaging/models.py), added before the one it replaces goes.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('messaging', '0006_merge_broadcasts_provider_message_id'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='message',
            index=models.Index(condition=models.Q(('status__in', ['sending', 'sent', 'delivered'])), fields=['tenant', 'recipient', 'sent_at'], include=('category', 'channel', 'id'), name='message_slots'),
        ),
        migrations.RemoveIndex(
            model_name='message',
            name='message_recipient_sent_at',
        ),
    ]
