"""A GIN index on Recipient.attributes (PostgreSQL only): segment tests `attribute = value` are
compiled to containment (`attributes @> '{"plan": "pro"}'`), which jsonb_path_ops answers."""

from django.db import migrations

CREATE = ("CREATE INDEX IF NOT EXISTS recipient_attributes_gin ON recipients_recipient "
          "USING gin (attributes jsonb_path_ops)")
DROP = "DROP INDEX IF EXISTS recipient_attributes_gin"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("segments", "0001_initial"),
        ("recipients", "0002_recipient_erased_at_recipient_merged_into_and_more"),
    ]

    operations = [migrations.RunPython(create, drop)]
