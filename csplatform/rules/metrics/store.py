"""Writing metric values: only the rows whose values changed, in one upsert per batch.

Most sweeps find most values as they were; rewriting those rows would cost
the database a new row version, index entries and WAL for nothing, and
sending them would cost the round trip. So the values read beside the
accounts and contacts are compared here, the upsert carries the changed rows
only, and its update still applies only where the stored values differ (a
concurrent run may have written them meanwhile). `computed_at` tells when the
values last changed.
"""

from csplatform.sql import differs, overwrite, upsert


def changed_values_store(model, subject_field, *, tenant, values_by_subject, stored, now):
    """Store `{subject id: values}` in AccountMetrics or ContactMetrics (`subject_field` "account" or
    "contact") where they differ from `stored` (`{subject id: values}` as read, None when no row)."""
    upsert(
        model,
        ["tenant", subject_field, "values", "computed_at"],
        [
            (tenant.pk, subject_id, values, now)
            for subject_id, values in values_by_subject.items()
            if stored[subject_id] != values
        ],
        conflict=["tenant", subject_field],
        action=f"{overwrite(['values', 'computed_at'])} WHERE {differs('{table}.{values}', 'excluded.{values}')}",
    )
