from django.db import migrations

# The rollups are read through index-only scans (rollup_by_account), which
# skip the table only for pages the visibility map marks all-visible. Rows
# arrive day by day, so the newest pages, the ones 7- and 30-day metrics read
# most, are the ones waiting for a vacuum; PostgreSQL's default (after 20%
# of the table is new) would leave weeks of rows behind on a large tenant.
ROLLUP_MODELS = ("DailyRollup", "DailyPropertyRollup", "DailyValueRollup")
AUTOVACUUM = "autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_vacuum_scale_factor = 0.02"
DEFAULTS = "autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_scale_factor"


def _alter(apps, schema_editor, clause):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in ROLLUP_MODELS:
        table = apps.get_model("customers", name)._meta.db_table
        schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(table)} {clause}")


def vacuum_sooner(apps, schema_editor):
    _alter(apps, schema_editor, f"SET ({AUTOVACUUM})")


def vacuum_by_default(apps, schema_editor):
    _alter(apps, schema_editor, f"RESET ({DEFAULTS})")


class Migration(migrations.Migration):
    dependencies = [("customers", "0005_dirty_account_marks")]

    operations = [migrations.RunPython(vacuum_sooner, vacuum_by_default)]
