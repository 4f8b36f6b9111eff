import datetime as dt
import threading
import time

import pytest
from django.db import connection, transaction

from csplatform.customers.ingest import IngestResult, events_ingest
from csplatform.customers.services import account_mark_dirty
from csplatform.customers.models import Account, DailyPropertyRollup, DailyRollup, DailyValueRollup, UsageEvent
from tests.factories import AccountFactory, ContactFactory, TenantFactory

UTC = dt.timezone.utc


def at(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def make_event(account, message_id, timestamp, *, contact=None, name="login", properties=None):
    return {
        "message_id": message_id,
        "account_id": account.pk,
        "contact_id": contact.pk if contact else None,
        "event": name,
        "timestamp": at(timestamp),
        "properties": properties or {},
    }


def daily_counts(tenant):
    return {
        (r.account_id, r.contact_ref, r.day.isoformat(), r.event): r.count
        for r in DailyRollup.objects.for_tenant(tenant)
    }


def property_rollups(tenant):
    return {
        (r.day.isoformat(), r.event, r.prop): (r.total, r.count, r.latest_value, r.latest_at)
        for r in DailyPropertyRollup.objects.for_tenant(tenant)
    }


@pytest.fixture
def account(tenant):
    return AccountFactory(tenant=tenant, external_id="acme")


def test_daily_counts_per_account_contact_day_and_event(tenant, account):
    contact = ContactFactory(account=account)
    other = AccountFactory(tenant=tenant)

    events_ingest(
        tenant=tenant,
        events=[
            make_event(account, "a", "2025-03-01T09:00:00", contact=contact),
            make_event(account, "b", "2025-03-01T17:00:00", contact=contact),
            make_event(account, "c", "2025-03-01T18:00:00"),
            make_event(account, "d", "2025-03-02T09:00:00", contact=contact, name="export"),
            make_event(other, "e", "2025-03-01T09:00:00"),
        ],
    )

    assert daily_counts(tenant) == {
        (account.pk, contact.pk, "2025-03-01", "login"): 2,
        (account.pk, 0, "2025-03-01", "login"): 1,
        (account.pk, contact.pk, "2025-03-02", "export"): 1,
        (other.pk, 0, "2025-03-01", "login"): 1,
    }


def test_days_follow_the_tenants_time_zone(account):
    tenant = account.tenant
    tenant.timezone = "America/Los_Angeles"
    tenant.save()

    events_ingest(
        tenant=tenant,
        events=[
            # 23:59 on 1 March in Los Angeles (UTC-8), although already 2 March in UTC.
            make_event(account, "late", "2025-03-02T07:59:00"),
            make_event(account, "midnight", "2025-03-02T08:00:00"),
            make_event(account, "morning", "2025-03-02T17:00:00"),
        ],
    )

    assert daily_counts(tenant) == {
        (account.pk, 0, "2025-03-01", "login"): 1,
        (account.pk, 0, "2025-03-02", "login"): 2,
    }


def test_the_same_instant_falls_on_each_tenants_own_day(account, other_tenant):
    other_tenant.timezone = "Asia/Tokyo"
    other_tenant.save()
    other_account = AccountFactory(tenant=other_tenant)

    events_ingest(tenant=account.tenant, events=[make_event(account, "m", "2025-03-01T20:00:00")])
    events_ingest(tenant=other_tenant, events=[make_event(other_account, "m", "2025-03-01T20:00:00")])

    assert list(daily_counts(account.tenant)) == [(account.pk, 0, "2025-03-01", "login")]
    assert list(daily_counts(other_tenant)) == [(other_account.pk, 0, "2025-03-02", "login")]


def test_numeric_properties_roll_up_total_count_and_latest_by_timestamp(tenant, account):
    events_ingest(
        tenant=tenant,
        events=[
            make_event(
                account, "a", "2025-03-01T12:00:00.500000", name="nps", properties={"score": 9, "comment": "ok"}
            ),
            make_event(account, "b", "2025-03-01T10:00:00", name="nps", properties={"score": 5.5, "promoter": True}),
        ],
    )
    # Arrives later but happened earlier: adds to the total, does not become the latest.
    events_ingest(
        tenant=tenant, events=[make_event(account, "c", "2025-03-01T12:00:00", name="nps", properties={"score": 1})]
    )
    assert property_rollups(tenant) == {
        ("2025-03-01", "nps", "score"): (15.5, 3, 9.0, at("2025-03-01T12:00:00.500000")),
    }

    events_ingest(
        tenant=tenant, events=[make_event(account, "d", "2025-03-01T23:00:00", name="nps", properties={"score": 2})]
    )
    assert property_rollups(tenant) == {
        ("2025-03-01", "nps", "score"): (17.5, 4, 2.0, at("2025-03-01T23:00:00")),
    }


def test_non_numeric_and_nested_properties_are_not_rolled_up(tenant, account):
    events_ingest(
        tenant=tenant,
        events=[
            make_event(
                account,
                "a",
                "2025-03-01T10:00:00",
                properties={"flag": True, "label": "x", "nested": {"n": 1}, "items": [1, 2], "none": None, "n": -4},
            )
        ],
    )

    assert property_rollups(tenant) == {("2025-03-01", "login", "n"): (-4.0, 1, -4.0, at("2025-03-01T10:00:00"))}


def test_replayed_events_change_no_rollup(tenant, account):
    batch = [make_event(account, f"m{i}", "2025-03-01T10:00:00", properties={"seats": i}) for i in range(4)]
    first = events_ingest(tenant=tenant, events=batch)
    counts, props = daily_counts(tenant), property_rollups(tenant)

    replays = [events_ingest(tenant=tenant, events=batch) for _ in range(3)]

    assert first == IngestResult(stored=4, duplicates=0)
    assert replays == [IngestResult(stored=0, duplicates=4)] * 3
    assert (daily_counts(tenant), property_rollups(tenant)) == (counts, props)
    assert props[("2025-03-01", "login", "seats")][:2] == (6.0, 4)


def test_repeated_message_ids_in_one_call_are_stored_once(tenant, account):
    result = events_ingest(
        tenant=tenant,
        events=[make_event(account, "m", "2025-03-01T10:00:00"), make_event(account, "m", "2025-03-01T11:00:00")],
    )

    assert result == IngestResult(stored=1, duplicates=0)
    assert UsageEvent.objects.for_tenant(tenant).get().timestamp == at("2025-03-01T10:00:00")
    assert sum(daily_counts(tenant).values()) == 1


def test_contact_last_seen_only_moves_forward(tenant, account):
    seen_recently = ContactFactory(account=account, last_seen_at=at("2025-04-01T00:00:00"))
    never_seen = ContactFactory(account=account)

    events_ingest(
        tenant=tenant,
        events=[
            make_event(account, "a", "2025-03-01T10:00:00", contact=seen_recently),
            make_event(account, "b", "2025-03-05T10:00:00", contact=never_seen),
            make_event(account, "c", "2025-03-02T10:00:00", contact=never_seen),
        ],
    )

    seen_recently.refresh_from_db()
    never_seen.refresh_from_db()
    assert seen_recently.last_seen_at == at("2025-04-01T00:00:00")
    assert never_seen.last_seen_at == at("2025-03-05T10:00:00")


def test_ingest_marks_only_the_touched_accounts_dirty(tenant, account):
    AccountFactory(tenant=tenant)

    events_ingest(tenant=tenant, events=[make_event(account, "a", "2025-03-01T10:00:00")])

    assert list(Account.objects.for_tenant(tenant).dirty()) == [account]


def test_marking_accounts_dirty_is_scoped_to_the_tenant(tenant, account, other_tenant):
    foreign = AccountFactory(tenant=other_tenant)

    account_mark_dirty(tenant=tenant, account_ids=[account.pk, foreign.pk])

    assert not Account.objects.for_tenant(other_tenant).dirty().exists()
    assert Account.objects.for_tenant(tenant).dirty().get() == account


def test_a_large_batch_is_written_in_chunks_without_losing_rows(tenant, account):
    contacts = [ContactFactory(account=account) for _ in range(3)]
    events = [
        make_event(
            account,
            f"m{i:04d}",
            f"2025-03-{1 + i % 5:02d}T10:00:00",
            contact=contacts[i % 3],
            name=f"e{i % 7}",
            properties={f"p{j}": i for j in range(3)},
        )
        for i in range(1000)
    ]

    assert events_ingest(tenant=tenant, events=events) == IngestResult(stored=1000, duplicates=0)
    assert sum(daily_counts(tenant).values()) == 1000
    assert sum(count for _, count, _, _ in property_rollups(tenant).values()) == 3000
    assert sum(total for total, _, _, _ in property_rollups(tenant).values()) == 3 * sum(range(1000))


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_batches_store_and_count_each_event_once():
    """Two connections send the same batch; the second starts while the first is uncommitted.

    SQLite runs one writer at a time (BEGIN IMMEDIATE), so the race exists
    only on PostgreSQL.
    """
    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent writers: PostgreSQL")
    tenant = TenantFactory(slug="race")
    account = AccountFactory(tenant=tenant)
    batch = [make_event(account, f"m{i}", "2025-03-01T10:00:00", properties={"n": 1}) for i in range(50)]
    results = {}
    first_inserted, release_first = threading.Event(), threading.Event()

    def first():
        try:
            with transaction.atomic():
                results["first"] = events_ingest(tenant=tenant, events=batch)
                first_inserted.set()
                release_first.wait(timeout=30)
        finally:
            connection.close()

    def second():
        first_inserted.wait(timeout=30)
        try:
            results["second"] = events_ingest(tenant=tenant, events=batch)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    second_is_blocked = wait_for_lock_waiter()
    release_first.set()
    for thread in threads:
        thread.join(timeout=60)

    assert second_is_blocked, "the second batch never waited for the first one's rows"
    assert results == {"first": IngestResult(stored=50, duplicates=0), "second": IngestResult(stored=0, duplicates=50)}
    assert UsageEvent.objects.for_tenant(tenant).count() == 50
    assert daily_counts(tenant) == {(account.pk, 0, "2025-03-01", "login"): 50}
    assert property_rollups(tenant)[("2025-03-01", "login", "n")][:2] == (50.0, 50)


def wait_for_lock_waiter(limit_seconds=20):
    """Poll until another backend of this database waits on a lock; False if none does in time."""
    deadline = time.monotonic() + limit_seconds
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.05)
    return False


@pytest.mark.skipif(connection.vendor != "postgresql", reason="autovacuum is PostgreSQL's")
@pytest.mark.django_db
def test_rollup_tables_are_vacuumed_long_before_a_fifth_of_them_is_new():
    # Index-only scans of the newest days need their pages marked all-visible by a vacuum.
    tables = [model._meta.db_table for model in (DailyRollup, DailyPropertyRollup, DailyValueRollup)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, reloptions FROM pg_class WHERE relname = ANY(%s)", [tables])
        options = dict(cursor.fetchall())
    assert set(options) == set(tables)
    for table in tables:
        assert "autovacuum_vacuum_insert_scale_factor=0.01" in options[table]
