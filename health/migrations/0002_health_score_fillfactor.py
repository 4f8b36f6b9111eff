from django.db import migrations

# Every pipeline pass rewrites each scored account's health row (its
# computed_at at least), all rows of a chunk in one transaction. With pages
# left half empty the new versions fit beside the old ones, so PostgreSQL
# updates them in place (HOT): no new entry in any of the table's indexes, and
# the old versions are pruned from the page without waiting for a vacuum.
# Full pages send every new version to another page, with new index entries,
# and the table and its indexes grow by a copy per pass until autovacuum runs.
FILLFACTOR = 50


def _alter(apps, schema_editor, clause):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = apps.get_model("health", "HealthScore")._meta.db_table
    schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(table)} {clause}")


def leave_room_for_updates(apps, schema_editor):
    _alter(apps, schema_editor, f"SET (fillfactor = {FILLFACTOR})")


def fill_pages(apps, schema_editor):
    _alter(apps, schema_editor, "RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("health", "0001_initial")]

    operations = [migrations.RunPython(leave_room_for_updates, fill_pages)]
