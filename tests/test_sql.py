"""The bulk SQL helpers: `OneOf` filters as a plain `__in` list does, and `upsert` applies its conflict action."""

import datetime as dt

import pytest
from django.db import DataError, connection
from django.utils import timezone

from csplatform.customers.models import Account, DirtyAccount, UsageEvent
from csplatform.sql import OneOf, analyze_where_tenant_unseen, upsert
from csplatform.tenancy.models import AuditLogEntry
from tests.factories import AccountFactory


def test_one_of_selects_the_same_rows_as_a_plain_in_list(tenant):
    accounts = AccountFactory.create_batch(4, tenant=tenant)
    wanted = [accounts[0].pk, accounts[2].pk, accounts[3].pk + 1000]

    through_ids = Account.objects.for_tenant(tenant).filter(OneOf("pk", wanted))
    through_list = Account.objects.for_tenant(tenant).filter(pk__in=wanted)

    assert sorted(through_ids.values_list("pk", flat=True)) == sorted(through_list.values_list("pk", flat=True))
    assert through_ids.count() == 2


def test_no_ids_match_nothing_when_reading_updating_and_deleting(tenant):
    account = AccountFactory(tenant=tenant)
    DirtyAccount.objects.create(tenant=tenant, account=account, dirty_at=timezone.now())
    marks = DirtyAccount.objects.for_tenant(tenant)

    assert list(marks.filter(OneOf("account_id", []))) == []
    assert marks.filter(OneOf("account_id", [])).update(dirty_at=timezone.now()) == 0
    marks.filter(OneOf("account_id", [])).delete()

    assert marks.count() == 1


def test_upsert_inserts_new_rows_and_applies_its_action_to_existing_ones(tenant):
    marked, unmarked = AccountFactory.create_batch(2, tenant=tenant)
    before = timezone.now() - dt.timedelta(hours=1)
    DirtyAccount.objects.create(tenant=tenant, account=marked, dirty_at=before)
    now = timezone.now()

    upsert(
        DirtyAccount,
        ["tenant", "account", "dirty_at", "waiting_since"],
        [(tenant.pk, marked.pk, now, now), (tenant.pk, unmarked.pk, now, now)],
        conflict=["tenant", "account"],
        action="DO UPDATE SET {dirty_at} = excluded.{dirty_at}",
    )

    marks = dict(DirtyAccount.objects.for_tenant(tenant).values_list("account_id", "dirty_at"))
    assert marks == {marked.pk: now, unmarked.pk: now}


def test_upsert_stores_text_json_times_and_missing_values_as_the_orm_does(tenant):
    account = AccountFactory(tenant=tenant)
    at = timezone.now()
    awkward = 'a "quoted", back\\slashed {braced} NULL value'
    rows = [
        (tenant.pk, "m-1", account.pk, None, awkward, at, {"say": awkward, "n": [1, 2.5, None]}, at),
        (tenant.pk, "m-2", account.pk, None, "", at, {}, at),
    ]

    upsert(
        UsageEvent, ["tenant", "message_id", "account", "contact", "event", "timestamp", "properties", "received_at"],
        rows, conflict=["tenant", "message_id"], action="DO NOTHING",
    )

    stored = UsageEvent.objects.for_tenant(tenant).order_by("message_id")
    assert [(e.message_id, e.contact_id, e.event, e.timestamp, e.properties) for e in stored] == [
        ("m-1", None, awkward, at, {"say": awkward, "n": [1, 2.5, None]}),
        ("m-2", None, "", at, {}),
    ]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite does not enforce a column's length")
def test_upsert_refuses_a_value_longer_than_its_column_instead_of_cutting_it(tenant):
    account = AccountFactory(tenant=tenant)

    with pytest.raises(DataError):
        upsert(
            UsageEvent, ["tenant", "message_id", "account", "event", "timestamp", "received_at"],
            [(tenant.pk, "m-1", account.pk, "e" * 201, timezone.now(), timezone.now())],
            conflict=["tenant", "message_id"], action="DO NOTHING",
        )


def test_one_of_selects_text_values_exactly(tenant):
    AccountFactory(tenant=tenant, external_id='acme "north", inc\\')
    AccountFactory(tenant=tenant, external_id="acme")

    found = Account.objects.for_tenant(tenant).filter(OneOf("external_id", ['acme "north", inc\\', "NULL", "acm"]))

    assert list(found.values_list("external_id", flat=True)) == ['acme "north", inc\\']


def test_upsert_stores_none_in_a_json_column_as_sql_null_and_json_nulls_within_values(tenant):
    at = timezone.now()

    upsert(
        AuditLogEntry,
        ["tenant", "actor_label", "action", "object_type", "object_id", "object_repr", "before", "after", "created_at"],
        [
            (tenant.pk, "", "create", "stage", "", "", None, {"name": None, "keys": []}, at),
            (tenant.pk, "", "delete", "stage", "", "", [1], None, at),
        ],
        conflict=["id"], action="DO NOTHING",
    )

    entries = AuditLogEntry.objects.for_tenant(tenant)
    assert list(entries.filter(before__isnull=True).values_list("action", "after")) == [
        ("create", {"name": None, "keys": []})
    ]
    assert list(entries.filter(after__isnull=True).values_list("action", "before")) == [("delete", [1])]


def tenants_in_statistics(model):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT most_common_vals::text::bigint[] FROM pg_stats WHERE tablename = %s AND attname = 'tenant_id'",
            [model._meta.db_table],
        )
        row = cursor.fetchone()
    return set(row[0]) if row else set()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite keeps no statistics per value")
def test_a_table_whose_statistics_predate_a_tenant_is_analysed_for_it_and_one_that_has_seen_it_is_not(
    tenant, other_tenant
):
    AccountFactory.create_batch(3, tenant=other_tenant)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE customers_account")
    AccountFactory.create_batch(3, tenant=tenant)

    assert analyze_where_tenant_unseen(other_tenant.pk, [Account]) == []
    assert analyze_where_tenant_unseen(tenant.pk, [Account]) == ["customers_account"]
    assert tenants_in_statistics(Account) == {tenant.pk, other_tenant.pk}
    assert analyze_where_tenant_unseen(tenant.pk, [Account]) == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite keeps no statistics per value")
def test_a_table_without_rows_of_a_tenant_is_not_analysed_for_it(tenant, other_tenant):
    AccountFactory.create_batch(3, tenant=other_tenant)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE customers_account")

    assert analyze_where_tenant_unseen(tenant.pk, [Account]) == []
    assert tenants_in_statistics(Account) == {other_tenant.pk}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite compiles no queries")
def test_postgresql_compiles_no_query_just_in_time_however_high_its_estimate(db):
    # A query over a chunk takes milliseconds; compiling it took hundreds whenever a fresh table's estimate ran high.
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone() == ("off",)
