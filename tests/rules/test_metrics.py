"""Metric values computed from the daily rollups, through `metrics_compute`."""

import datetime as dt

import factory
import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from csplatform.customers.ingest import events_ingest
from csplatform.customers.models import Account, Contact, DailyPropertyRollup, DailyRollup, DailyValueRollup
from csplatform.rules.metrics import metrics_compute, register_criteria_fields
from csplatform.rules.models import AccountMetrics, ContactMetrics, MetricDefinition
from csplatform.rules.registry import fields_for, resolve_field
from tests.factories import AccountFactory, ContactFactory, TenantFactory

TODAY = dt.date(2024, 3, 11)


class DailyRollupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DailyRollup

    account = factory.SubFactory(AccountFactory)
    tenant = factory.SelfAttribute("account.tenant")
    contact_ref = 0
    day = TODAY
    event = "login"
    count = 1


class DailyPropertyRollupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DailyPropertyRollup

    account = factory.SubFactory(AccountFactory)
    tenant = factory.SelfAttribute("account.tenant")
    day = TODAY
    event = "nps_answered"
    prop = "score"
    total = 0
    count = 1


class MetricDefinitionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MetricDefinition

    tenant = factory.SubFactory(TenantFactory)
    key = factory.Sequence(lambda n: f"metric_{n}")
    label = factory.LazyAttribute(lambda o: o.key.replace("_", " ").capitalize())
    event_names = factory.LazyFunction(lambda: ["login"])
    window_days = 30
    aggregation = "count"


def days_ago(n):
    return TODAY - dt.timedelta(days=n)


def account_values(account):
    return AccountMetrics.objects.for_tenant(account.tenant_id).get(account=account).values


def contact_values(contact):
    return ContactMetrics.objects.for_tenant(contact.tenant_id).get(contact=contact).values


@pytest.fixture
def account(tenant):
    return AccountFactory(tenant=tenant, signup_date=None)


def test_count_sums_the_named_events_inside_the_window(tenant, account):
    MetricDefinitionFactory(tenant=tenant, key="logins_30d", event_names=["login", "sso_login"], window_days=30)
    DailyRollupFactory(account=account, day=TODAY, event="login", count=3)
    DailyRollupFactory(account=account, day=days_ago(29), event="sso_login", count=2)
    DailyRollupFactory(account=account, day=days_ago(30), event="login", count=100)
    DailyRollupFactory(account=account, day=TODAY + dt.timedelta(days=1), event="login", count=100)
    DailyRollupFactory(account=account, day=TODAY, event="export", count=100)

    metrics_compute(tenant=tenant, today=TODAY)

    assert account_values(account)["logins_30d"] == 5


def test_active_days_counts_each_day_with_any_of_the_events_once(tenant, account):
    MetricDefinitionFactory(
        tenant=tenant, key="active_days_7d", aggregation="active_days", event_names=["login", "export"], window_days=7
    )
    rollups = [(0, "login", 0), (5, "login", 0), (0, "export", 0), (0, "export", 6), (0, "login", 7), (0, "invoice", 3)]
    for contact_ref, event, age in rollups:
        DailyRollupFactory(account=account, contact_ref=contact_ref, event=event, day=days_ago(age))

    metrics_compute(tenant=tenant, today=TODAY)

    assert account_values(account)["active_days_7d"] == 2


def test_distinct_contacts_counts_contacts_and_ignores_events_without_one(tenant, account):
    MetricDefinitionFactory(tenant=tenant, key="exporters_30d", aggregation="distinct_contacts", event_names=["export"])
    first, second = ContactFactory(account=account), ContactFactory(account=account)
    DailyRollupFactory(account=account, contact_ref=first.pk, event="export", day=TODAY)
    DailyRollupFactory(account=account, contact_ref=first.pk, event="export", day=days_ago(3))
    DailyRollupFactory(account=account, contact_ref=second.pk, event="export", day=days_ago(10))
    DailyRollupFactory(account=account, contact_ref=0, event="export", day=TODAY, count=40)
    DailyRollupFactory(account=account, contact_ref=second.pk, event="login", day=TODAY)

    metrics_compute(tenant=tenant, today=TODAY)

    assert account_values(account)["exporters_30d"] == 2


def test_sum_and_average_combine_the_property_rollups_of_the_window(tenant, account):
    common = {"event_names": ["nps_answered"], "property": "score", "window_days": 90}
    MetricDefinitionFactory(tenant=tenant, key="nps_total", aggregation="sum", **common)
    MetricDefinitionFactory(tenant=tenant, key="nps_average", aggregation="average", **common)
    DailyPropertyRollupFactory(account=account, day=TODAY, total=17, count=2)
    DailyPropertyRollupFactory(account=account, day=days_ago(89), total=6, count=2)
    DailyPropertyRollupFactory(account=account, day=days_ago(90), total=1000, count=1)
    DailyPropertyRollupFactory(account=account, day=TODAY, prop="comment_length", total=500, count=1)

    metrics_compute(tenant=tenant, today=TODAY)

    values = account_values(account)
    assert values["nps_total"] == 23.0
    assert values["nps_average"] == 23 / 4


def test_property_metrics_without_data_are_zero_for_sums_and_unknown_for_averages_and_latest(tenant, account):
    common = {"event_names": ["nps_answered"], "property": "score"}
    MetricDefinitionFactory(tenant=tenant, key="nps_total", aggregation="sum", **common)
    MetricDefinitionFactory(tenant=tenant, key="nps_average", aggregation="average", **common)
    MetricDefinitionFactory(tenant=tenant, key="nps_latest", aggregation="latest", **common)

    metrics_compute(tenant=tenant, today=TODAY)

    values = account_values(account)
    assert (values["nps_total"], values["nps_average"], values["nps_latest"]) == (0.0, None, None)


def test_latest_is_the_newest_value_of_any_of_the_events_inside_the_window(tenant, account):
    seats = {"aggregation": "latest", "property": "seats"}
    MetricDefinitionFactory(tenant=tenant, key="seats_30d", event_names=["seats_reported", "seats_changed"], **seats)
    MetricDefinitionFactory(tenant=tenant, key="seats_3d", event_names=["seats_reported"], window_days=3, **seats)
    at = dt.datetime(2024, 3, 8, 9, 0, tzinfo=dt.UTC)
    for event, prop, age, value, latest_at in [
        ("seats_reported", "seats", 3, 12, at),
        ("seats_reported", "seats", 20, 8, at - dt.timedelta(days=17)),
        ("seats_changed", "seats", 3, 14, at + dt.timedelta(hours=2)),
        ("seats_changed", "seats", 40, 99, at - dt.timedelta(days=37)),
        ("seats_changed", "admins", 0, 2, at + dt.timedelta(days=3)),
    ]:
        DailyPropertyRollupFactory(
            account=account, event=event, prop=prop, day=days_ago(age), latest_value=value, latest_at=latest_at
        )

    metrics_compute(tenant=tenant, today=TODAY)

    values = account_values(account)
    assert values["seats_30d"] == 14
    assert values["seats_3d"] is None


@time_machine.travel(dt.datetime(2024, 3, 10, 20, 0, tzinfo=dt.UTC), tick=False)
def test_windows_end_on_the_tenants_local_date(db):
    # 20:00 UTC on March 10 is already March 11 in Auckland.
    tenant = TenantFactory(slug="kiwi", timezone="Pacific/Auckland")
    account = AccountFactory(tenant=tenant, signup_date=dt.date(2024, 3, 1))
    DailyRollupFactory(account=account, day=dt.date(2024, 3, 11), count=1)
    DailyRollupFactory(account=account, day=dt.date(2024, 3, 5), count=10)
    DailyRollupFactory(account=account, day=dt.date(2024, 3, 4), count=100)

    metrics_compute(tenant=tenant)

    values = account_values(account)
    assert values["events_7d"] == 11
    assert values["days_since_signup"] == 10
    assert values["days_since_last_seen"] == 0


@time_machine.travel(dt.datetime(2024, 3, 11, 3, 0, tzinfo=dt.UTC), tick=False)
def test_datetimes_become_tenant_local_dates_before_counting_days(db):
    # 03:00 UTC on March 11 is still March 10 in New York.
    tenant = TenantFactory(slug="nyc", timezone="America/New_York")
    account = AccountFactory(tenant=tenant, trial_ends_at=dt.datetime(2024, 3, 14, 2, 30, tzinfo=dt.UTC))
    ContactFactory(account=account, last_seen_at=dt.datetime(2024, 3, 9, 3, 30, tzinfo=dt.UTC))

    metrics_compute(tenant=tenant)

    values = account_values(account)
    assert values["days_to_trial_end"] == 3
    assert values["days_since_last_seen"] == 2


def test_builtin_account_metrics_are_computed_in_the_same_pass(tenant):
    account = AccountFactory(
        tenant=tenant,
        signup_date=days_ago(45),
        renewal_date=TODAY + dt.timedelta(days=60),
        card_expires_at=TODAY - dt.timedelta(days=2),
        trial_ends_at=None,
    )
    ann, ben, cat = (ContactFactory(account=account) for _ in range(3))
    DailyRollupFactory(account=account, contact_ref=ann.pk, day=days_ago(2), event="login", count=4)
    DailyRollupFactory(account=account, contact_ref=ann.pk, day=days_ago(2), event="export", count=1)
    DailyRollupFactory(account=account, contact_ref=ben.pk, day=days_ago(20), event="login", count=5)
    DailyRollupFactory(account=account, contact_ref=cat.pk, day=days_ago(60), event="login", count=7)
    DailyRollupFactory(account=account, contact_ref=0, day=days_ago(89), event="api_call", count=30)

    metrics_compute(tenant=tenant, today=TODAY)

    assert account_values(account) == {
        "days_since_signup": 45,
        "days_to_renewal": 60,
        "days_to_trial_end": None,
        "days_to_card_expiry": -2,
        "days_since_last_seen": 2,
        "active_contacts_7d": 1,
        "active_contacts_30d": 2,
        "events_7d": 5,
        "events_30d": 10,
        "events_90d": 47,
    }


def test_days_since_last_seen_takes_the_later_of_contact_last_seen_and_last_rollup_day(tenant, account):
    ContactFactory(account=account, last_seen_at=dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC))
    DailyRollupFactory(account=account, day=days_ago(400))
    quiet = AccountFactory(tenant=tenant)
    DailyRollupFactory(account=quiet, day=days_ago(400))
    never = AccountFactory(tenant=tenant)

    metrics_compute(tenant=tenant, today=TODAY)

    assert account_values(account)["days_since_last_seen"] == 10
    assert account_values(quiet)["days_since_last_seen"] == 400
    assert account_values(never)["days_since_last_seen"] is None


def test_accounts_quiet_through_every_window_find_their_last_event_however_old_in_one_query(tenant):
    quiet = [AccountFactory(tenant=tenant) for _ in range(3)]
    for n, account in enumerate(quiet):
        DailyRollupFactory(account=account, contact_ref=0, day=days_ago(900 + n))
        DailyRollupFactory(account=account, contact_ref=0, day=days_ago(200 + n))
    active = AccountFactory(tenant=tenant)
    DailyRollupFactory(account=active, day=days_ago(3))
    DailyRollupFactory(account=active, day=days_ago(500))

    with CaptureQueriesContext(connection) as one_quiet:
        metrics_compute(tenant=tenant, account_ids=[quiet[0].pk, active.pk], today=TODAY)
    with CaptureQueriesContext(connection) as all_quiet:
        metrics_compute(tenant=tenant, account_ids=[*(account.pk for account in quiet), active.pk], today=TODAY)

    assert [account_values(account)["days_since_last_seen"] for account in quiet] == [200, 201, 202]
    assert account_values(active)["days_since_last_seen"] == 3
    assert len(all_quiet) == len(one_quiet)


def test_contact_metrics_count_only_that_contacts_events(tenant, account):
    MetricDefinitionFactory(tenant=tenant, key="exports_30d", subject="contact", event_names=["export"])
    MetricDefinitionFactory(
        tenant=tenant, key="export_days_30d", subject="contact", aggregation="active_days", event_names=["export"]
    )
    ann = ContactFactory(account=account, last_seen_at=None)
    ben = ContactFactory(account=account, last_seen_at=dt.datetime(2024, 3, 4, 8, 0, tzinfo=dt.UTC))
    DailyRollupFactory(account=account, contact_ref=ann.pk, day=TODAY, event="export", count=2)
    DailyRollupFactory(account=account, contact_ref=ann.pk, day=days_ago(5), event="export", count=1)
    DailyRollupFactory(account=account, contact_ref=ann.pk, day=days_ago(1), event="login", count=9)
    DailyRollupFactory(account=account, contact_ref=0, day=TODAY, event="export", count=50)

    metrics_compute(tenant=tenant, today=TODAY)

    assert contact_values(ann) == {
        "days_since_last_seen": 0,
        "events_7d": 12,
        "events_30d": 12,
        "events_90d": 12,
        "exports_30d": 3,
        "export_days_30d": 2,
    }
    assert contact_values(ben) == {
        "days_since_last_seen": 7,
        "events_7d": 0,
        "events_30d": 0,
        "events_90d": 0,
        "exports_30d": 0,
        "export_days_30d": 0,
    }
    assert "exports_30d" not in account_values(account)


def test_another_tenants_rollups_and_accounts_are_never_counted(tenant, other_tenant, account):
    MetricDefinitionFactory(tenant=tenant, key="logins_30d")
    MetricDefinitionFactory(tenant=other_tenant, key="their_logins")
    DailyRollupFactory(account=account, day=TODAY, count=1)
    theirs = AccountFactory(tenant=other_tenant)
    DailyPropertyRollupFactory(account=theirs, day=TODAY, total=9)
    DailyRollupFactory(account=theirs, day=TODAY, count=70)

    metrics_compute(tenant=tenant, account_ids=[account.pk, theirs.pk], today=TODAY)

    values = account_values(account)
    assert (values["logins_30d"], values["events_7d"]) == (1, 1)
    assert "their_logins" not in values
    assert not AccountMetrics.objects.for_tenant(other_tenant).exists()
    assert not AccountMetrics.objects.for_tenant(tenant).filter(account=theirs).exists()


@pytest.mark.skipif(connection.vendor == "postgresql", reason="PostgreSQL refuses such a row (tests/customers)")
def test_a_rollup_row_claiming_our_account_under_another_tenant_is_never_counted(tenant, other_tenant, account):
    DailyRollupFactory(account=account, day=TODAY, count=1)
    DailyRollupFactory(account=account, tenant=other_tenant, day=days_ago(1), event="login", count=500)

    metrics_compute(tenant=tenant, account_ids=[account.pk], today=TODAY)

    assert account_values(account)["events_7d"] == 1


def test_recompute_updates_rows_in_place_and_drops_deleted_metrics(tenant, account):
    definition = MetricDefinitionFactory(tenant=tenant, key="logins_30d")
    DailyRollupFactory(account=account, day=TODAY, count=1)
    metrics_compute(tenant=tenant, today=TODAY)
    first = AccountMetrics.objects.for_tenant(tenant).get(account=account)

    definition.delete()
    DailyRollupFactory(account=account, day=days_ago(1), count=4)
    metrics_compute(tenant=tenant, account_ids=[account.pk], today=TODAY)

    second = AccountMetrics.objects.for_tenant(tenant).get(account=account)
    assert second.pk == first.pk
    assert second.values["events_7d"] == 5
    assert "logins_30d" not in second.values
    assert second.computed_at >= first.computed_at


def test_accounts_are_processed_in_chunks(tenant, monkeypatch):
    monkeypatch.setattr("csplatform.rules.metrics.compute.CHUNK_SIZE", 2)
    accounts = AccountFactory.create_batch(5, tenant=tenant)
    for index, account in enumerate(accounts):
        DailyRollupFactory(account=account, day=TODAY, count=index + 1)

    assert metrics_compute(tenant=tenant, today=TODAY) == 5
    assert metrics_compute(tenant=tenant, account_ids=[a.pk for a in accounts[:3]], today=TODAY) == 3

    assert [account_values(a)["events_7d"] for a in accounts] == [1, 2, 3, 4, 5]


def build_tenant_with_activity(tenant, accounts):
    """Every metric family in use, with rollups for every account and contact."""
    MetricDefinitionFactory(tenant=tenant, key="logins_30d")
    nps = {"event_names": ["nps_answered"], "property": "score"}
    MetricDefinitionFactory(tenant=tenant, key="nps_average", aggregation="average", **nps)
    MetricDefinitionFactory(tenant=tenant, key="nps_latest", aggregation="latest", **nps)
    MetricDefinitionFactory(tenant=tenant, key="exports_30d", subject="contact", event_names=["export"])
    MetricDefinitionFactory(tenant=tenant, key="login_trend", aggregation="trend")
    MetricDefinitionFactory(
        tenant=tenant, key="breadth", aggregation="distinct_values", event_names=["export"], property="format"
    )
    created = AccountFactory.create_batch(accounts, tenant=tenant)
    for account in created:
        contact = ContactFactory(account=account)
        DailyRollupFactory(account=account, contact_ref=contact.pk, day=days_ago(1), event="login", count=2)
        DailyRollupFactory(account=account, contact_ref=contact.pk, day=days_ago(2), event="export", count=1)
        answered_at = dt.datetime(2024, 3, 8, tzinfo=dt.UTC)
        DailyPropertyRollupFactory(account=account, day=days_ago(3), total=9, latest_value=9, latest_at=answered_at)
        DailyValueRollup.objects.create(
            tenant=tenant, account=account, day=days_ago(2), event="export", prop="format", value="csv"
        )
    return created


def test_the_number_of_queries_does_not_grow_with_the_number_of_accounts(
    tenant, other_tenant, django_assert_num_queries
):
    build_tenant_with_activity(tenant, 5)
    with CaptureQueriesContext(connection) as small:
        metrics_compute(tenant=tenant, today=TODAY)

    accounts = build_tenant_with_activity(other_tenant, 50)
    with django_assert_num_queries(len(small.captured_queries)):
        metrics_compute(tenant=other_tenant, today=TODAY)

    assert all(
        (account_values(a)["logins_30d"], account_values(a)["nps_latest"], account_values(a)["breadth"]) == (2, 9, 1)
        for a in accounts
    )


@pytest.fixture
def metric_fields():
    register_criteria_fields()


def test_metric_fields_read_the_same_stored_value_in_sql_and_in_python(tenant, metric_fields):
    MetricDefinitionFactory(tenant=tenant, key="logins_30d")
    busy, quiet = AccountFactory(tenant=tenant), AccountFactory(tenant=tenant)
    DailyRollupFactory(account=busy, day=TODAY, count=3)
    metrics_compute(tenant=tenant, account_ids=[busy.pk, quiet.pk], today=TODAY)
    never_computed = AccountFactory(tenant=tenant)
    field = resolve_field("metric.logins_30d", subject="account", tenant=tenant)

    in_sql = dict(
        Account.objects.for_tenant(tenant).annotate(v=field.expression(tenant)).values_list("pk", "v")
    )
    in_python = {a.pk: field.value(a, tenant) for a in Account.objects.for_tenant(tenant)}

    assert in_sql == in_python == {busy.pk: 3.0, quiet.pk: 0.0, never_computed.pk: None}


def test_contact_metric_fields_read_contact_values_under_contact_metric(tenant, account, metric_fields):
    MetricDefinitionFactory(tenant=tenant, key="exports_30d", subject="contact", event_names=["export"])
    ann, ben = ContactFactory(account=account), ContactFactory(account=account, last_seen_at=None)
    DailyRollupFactory(account=account, contact_ref=ann.pk, event="export", count=4)
    metrics_compute(tenant=tenant, today=TODAY)
    field = resolve_field("contact.metric.exports_30d", subject="contact", tenant=tenant)
    unseen = resolve_field("contact.metric.days_since_last_seen", subject="contact", tenant=tenant)

    in_sql = Contact.objects.for_tenant(tenant).annotate(v=field.expression(tenant), d=unseen.expression(tenant))

    assert {c.pk: (c.v, c.d) for c in in_sql} == {ann.pk: (4.0, 0.0), ben.pk: (0.0, None)}
    assert (field.value(ann, tenant), unseen.value(ben, tenant)) == (4.0, None)


def test_metric_names_resolve_only_to_the_tenants_own_metrics_and_the_builtins(tenant, other_tenant, metric_fields):
    MetricDefinitionFactory(tenant=tenant, key="logins_30d")
    MetricDefinitionFactory(tenant=tenant, key="exports_30d", subject="contact", event_names=["export"])
    MetricDefinitionFactory(tenant=other_tenant, key="their_metric")

    def resolves(name, subject="account"):
        return resolve_field(name, subject=subject, tenant=tenant) is not None

    assert resolves("metric.logins_30d") and resolves("metric.days_to_renewal")
    assert not resolves("metric.their_metric") and not resolves("metric.exports_30d")
    assert resolves("contact.metric.exports_30d", "contact") and not resolves("contact.metric.logins_30d", "contact")
    account_names = {f.name for f in fields_for("account", tenant)}
    assert {"metric.logins_30d", "metric.events_90d", "metric.days_since_signup"} <= account_names
    assert "metric.their_metric" not in account_names
    assert resolve_field("metric.logins_30d", subject="account", tenant=tenant).label == "Logins 30d"


@time_machine.travel(dt.datetime(2024, 3, 10, 20, 0, tzinfo=dt.UTC), tick=False)
def test_metrics_follow_ingested_events_on_the_tenants_local_days(db):
    tenant = TenantFactory(slug="kiwi", timezone="Pacific/Auckland")
    account = AccountFactory(tenant=tenant)
    contact = ContactFactory(account=account, last_seen_at=None)
    MetricDefinitionFactory(tenant=tenant, key="seats", aggregation="latest", event_names=["seats"], property="count")
    MetricDefinitionFactory(tenant=tenant, key="logins_7d", subject="contact", event_names=["login"], window_days=7)

    def event(n, name, when, **properties):
        return {
            "message_id": f"m{n}",
            "account_id": account.pk,
            "contact_id": contact.pk,
            "event": name,
            "timestamp": when,
            "properties": properties,
        }

    events_ingest(
        tenant=tenant,
        events=[
            # 12:00 UTC on March 10 is 01:00 on March 11, today, in Auckland.
            event(1, "login", dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.UTC)),
            # 10:00 UTC on March 4 is 23:00 on March 4 there: eight days ago, outside 7 days.
            event(2, "login", dt.datetime(2024, 3, 4, 10, 0, tzinfo=dt.UTC)),
            event(3, "seats", dt.datetime(2024, 3, 9, 8, 0, tzinfo=dt.UTC), count=12),
            event(4, "seats", dt.datetime(2024, 3, 9, 9, 0, tzinfo=dt.UTC), count=15),
        ],
    )

    metrics_compute(tenant=tenant)

    values = account_values(account)
    assert (values["events_7d"], values["events_30d"], values["seats"]) == (3, 4, 15.0)
    assert values["days_since_last_seen"] == 0
    assert contact_values(contact)["logins_7d"] == 1
