"""The indexes and keys ingest writes for every event: only those reads and deletes need, each once."""

import pytest
from django.db import IntegrityError, connection, transaction

from csplatform.customers.models import DailyPropertyRollup, DailyRollup, DailyValueRollup, DirtyAccount, UsageEvent
from tests.factories import AccountFactory, UsageEventFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="these indexes and keys are PostgreSQL's"),
]
INGEST_TABLES = [UsageEvent, DailyRollup, DailyPropertyRollup, DailyValueRollup]


def _index_definitions(model):
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [model._meta.db_table])
        return sorted(row[0] for row in cursor.fetchall())


def _foreign_keys(model):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
            [model._meta.db_table],
        )
        return [row[0] for row in cursor.fetchall()]


def test_the_rollup_key_carries_the_count_so_metrics_read_it_without_a_second_index():
    definitions = _index_definitions(DailyRollup)
    key = [d for d in definitions if "rollup_unique_key" in d]
    assert len(key) == 1
    assert "(tenant_id, account_id, day, event, contact_ref) INCLUDE (count)" in key[0]
    assert not [d for d in definitions if "(tenant_id, account_id, day)" in d]


def test_dirty_marks_have_no_tenant_index_beside_their_tenant_first_key():
    assert not [d for d in _index_definitions(DirtyAccount) if d.endswith("(tenant_id)")]


@pytest.mark.parametrize("model", INGEST_TABLES, ids=lambda model: model.__name__)
def test_ingest_tables_have_no_index_of_the_account_alone(model):
    assert not [d for d in _index_definitions(model) if d.endswith("(account_id)")]


@pytest.mark.parametrize("model", INGEST_TABLES, ids=lambda model: model.__name__)
def test_ingest_tables_reference_the_account_together_with_its_tenant(model):
    keys = _foreign_keys(model)
    assert (
        "FOREIGN KEY (tenant_id, account_id) REFERENCES customers_account(tenant_id, id) DEFERRABLE INITIALLY DEFERRED"
        in keys
    )
    assert not [key for key in keys if key.startswith("FOREIGN KEY (account_id)")]


def test_the_database_refuses_an_event_that_names_another_tenants_account(tenant, other_tenant):
    theirs = AccountFactory(tenant=other_tenant)
    with pytest.raises(IntegrityError), transaction.atomic():
        UsageEventFactory(tenant=tenant, account=theirs)
        connection.check_constraints()
