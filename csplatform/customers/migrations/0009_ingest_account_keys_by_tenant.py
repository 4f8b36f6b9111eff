import django.db.models.deletion
from django.db import migrations, models

# The tables ingest writes for every event lose the index of the account alone and Django's foreign key on
# it. On PostgreSQL the reference becomes (tenant_id, account_id) -> customers_account (tenant_id, id): a
# row cannot name another tenant's account, and the checks run when accounts are deleted read each table's
# tenant-first index. SQLite keeps no constraint on these columns; there the ORM's cascade keeps the rows in step.
INGEST_TABLES = ("UsageEvent", "DailyRollup", "DailyPropertyRollup", "DailyValueRollup")


def _key_names(apps, schema_editor):
    quote = schema_editor.quote_name
    for model_name in INGEST_TABLES:
        table = apps.get_model("customers", model_name)._meta.db_table
        yield quote(table), quote(f"{table}_account_in_tenant")


def add_tenant_account_keys(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    accounts = schema_editor.quote_name(apps.get_model("customers", "Account")._meta.db_table)
    for table, key in _key_names(apps, schema_editor):
        schema_editor.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {key} FOREIGN KEY (tenant_id, account_id) "
            f"REFERENCES {accounts} (tenant_id, id) DEFERRABLE INITIALLY DEFERRED"
        )


def drop_tenant_account_keys(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, key in _key_names(apps, schema_editor):
        schema_editor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {key}")


class Migration(migrations.Migration):

    dependencies = [
        ('customers', '0008_rollup_key_covers_reads'),
    ]

    operations = [
        migrations.AlterField(
            model_name='dailypropertyrollup',
            name='account',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='customers.account'),
        ),
        migrations.AlterField(
            model_name='dailyrollup',
            name='account',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='customers.account'),
        ),
        migrations.AlterField(
            model_name='dailyvaluerollup',
            name='account',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='customers.account'),
        ),
        migrations.AlterField(
            model_name='usageevent',
            name='account',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='events', to='customers.account'),
        ),
        migrations.AddConstraint(
            model_name='account',
            constraint=models.UniqueConstraint(fields=('tenant', 'id'), name='account_unique_tenant_id'),
        ),
        migrations.RunPython(add_tenant_account_keys, drop_tenant_account_keys),
    ]
