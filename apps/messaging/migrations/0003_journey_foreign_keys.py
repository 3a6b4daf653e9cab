# The journey ids become foreign keys. No release wrote them (journeys did not exist), so the
# integer columns are replaced rather than converted.
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("journeys", "0001_initial"),
        ("messaging", "0002_template_version"),
    ]

    operations = [
        migrations.RemoveField(model_name="message", name="journey_run_id"),
        migrations.RemoveField(model_name="message", name="journey_step_id"),
        migrations.AddField(
            model_name="message", name="journey_run",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name="messages", to="journeys.journeyrun"),
        ),
        migrations.AddField(
            model_name="message", name="journey_step",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name="messages", to="journeys.journeystep"),
        ),
    ]
