"""The indexes ingest writes for every event: only those reads use, each once."""

import pytest
from django.db import connection

from csplatform.customers.models import DailyRollup, DirtyAccount

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="covering indexes are PostgreSQL's"),
]


def _index_definitions(model):
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [model._meta.db_table])
        return sorted(row[0] for row in cursor.fetchall())


def test_the_rollup_key_carries_the_count_so_metrics_read_it_without_a_second_index():
    definitions = _index_definitions(DailyRollup)
    key = [d for d in definitions if "rollup_unique_key" in d]
    assert len(key) == 1
    assert "(tenant_id, account_id, day, event, contact_ref) INCLUDE (count)" in key[0]
    assert not [d for d in definitions if "(tenant_id, account_id, day)" in d]


def test_dirty_marks_have_no_tenant_index_beside_their_tenant_first_key():
    assert not [d for d in _index_definitions(DirtyAccount) if d.endswith("(tenant_id)")]
