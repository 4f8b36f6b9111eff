from django.db import migrations

# The app's role owns no table, and only a table's owner may analyse it. This
# function runs as its owner, the role that migrates, and analyses a table
# with a tenant column for the pipeline (csplatform.sql.analyze_where_tenant_unseen).
CREATE = """
CREATE FUNCTION csp_analyze_tenant_table(target regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    IF NOT EXISTS (
        SELECT FROM pg_attribute WHERE attrelid = target AND attname = 'tenant_id' AND NOT attisdropped
    ) THEN
        RAISE EXCEPTION '% has no tenant column', target;
    END IF;
    EXECUTE format('ANALYZE %s', target);
END
$$
"""
DROP = "DROP FUNCTION csp_analyze_tenant_table(regclass)"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("csplatform", "0001_pipeline_pass")]

    operations = [migrations.RunPython(create, drop)]
