"""Writing metric values: only the rows whose values changed, in one upsert per batch.

Most sweeps find most values as they were; rewriting those rows would cost
the database a new row version, index entries and WAL for nothing, and
sending them would cost the round trip. So the values read beside the
accounts and contacts are compared here, the upsert carries the changed rows
only, and its update still applies only where the stored values differ (a
concurrent run may have written them meanwhile). `computed_at` tells when the
values last changed.
"""

from django.db import connection


def _differs(left, right):
    # PostgreSQL compares jsonb by value; SQLite stores JSON as text, which the
    # values' fixed key order keeps comparable.
    if connection.vendor == "postgresql":
        return f"{left} IS DISTINCT FROM {right}"
    return f"{left} IS NOT {right}"


def changed_values_store(model, subject_field, *, tenant, values_by_subject, stored, now):
    """Store `{subject id: values}` in AccountMetrics or ContactMetrics (`subject_field` "account" or
    "contact") where they differ from `stored` (`{subject id: values}` as read, None when no row)."""
    changed = {subject_id: values for subject_id, values in values_by_subject.items() if stored[subject_id] != values}
    if not changed:
        return
    meta, quote = model._meta, connection.ops.quote_name
    table = quote(meta.db_table)
    tenant_column, subject_column, values_column, computed_column = (
        quote(meta.get_field(name).column) for name in ("tenant", subject_field, "values", "computed_at")
    )
    computed_at = connection.ops.adapt_datetimefield_value(now)
    rows = [
        (tenant.pk, subject_id, connection.ops.adapt_json_value(values, None), computed_at)
        for subject_id, values in changed.items()
    ]
    batch_size = connection.ops.bulk_batch_size(["tenant", "subject", "values", "computed_at"], rows)
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            cursor.execute(
                f"INSERT INTO {table} ({tenant_column}, {subject_column}, {values_column}, {computed_column}) "
                f"VALUES {', '.join(['(%s, %s, %s, %s)'] * len(batch))} "
                f"ON CONFLICT ({tenant_column}, {subject_column}) DO UPDATE SET "
                f"{values_column} = excluded.{values_column}, {computed_column} = excluded.{computed_column} "
                f"WHERE {_differs(f'{table}.{values_column}', f'excluded.{values_column}')}",
                [value for row in batch for value in row],
            )
