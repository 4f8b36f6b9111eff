import django.db.models.deletion
from django.db import migrations, models

# On PostgreSQL the rollup unique key's index also carries `count`, so that metrics read through it index-only
# and the separate covering index, one more for ingest to write on every event, goes. The constraint keeps its
# name and columns, so ON CONFLICT still infers it. SQLite has no covering indexes and keeps the plain key.
KEY = "rollup_unique_key"
KEY_COLUMNS = "tenant_id, account_id, day, event, contact_ref"


def _swap_key_index(apps, schema_editor, include):
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    table = quote(apps.get_model("customers", "DailyRollup")._meta.db_table)
    replacement = quote(f"{KEY}_new")
    schema_editor.execute(f"CREATE UNIQUE INDEX {replacement} ON {table} ({KEY_COLUMNS}){include}")
    schema_editor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {quote(KEY)}")
    # Renames the index to the constraint's name.
    schema_editor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {quote(KEY)} UNIQUE USING INDEX {replacement}")


def key_covers_count(apps, schema_editor):
    _swap_key_index(apps, schema_editor, " INCLUDE (count)")


def plain_key(apps, schema_editor):
    _swap_key_index(apps, schema_editor, "")


class Migration(migrations.Migration):

    dependencies = [
        ('customers', '0007_fewer_ingest_indexes'),
        ('tenancy', '0002_membership_working_hours'),
    ]

    operations = [
        migrations.RunPython(key_covers_count, plain_key),
        migrations.RemoveIndex(
            model_name='dailyrollup',
            name='rollup_by_account',
        ),
        migrations.AlterField(
            model_name='dirtyaccount',
            name='tenant',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.tenant'),
        ),
    ]
