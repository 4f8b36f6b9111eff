"""The trend and distinct_values aggregations, the value rollups they read, and metrics as of a past day."""

import datetime as dt

import pytest

from csplatform.customers.ingest import events_ingest, value_rollups_rebuild
from csplatform.customers.models import DailyValueRollup
from csplatform.rules.metrics import metrics_compute, trend_percent
from csplatform.rules.services import metric_definition_create, metric_definition_update
from tests.factories import AccountFactory, ContactFactory, TenantFactory
from tests.rules.test_metrics import (
    TODAY,
    DailyPropertyRollupFactory,
    DailyRollupFactory,
    MetricDefinitionFactory,
    account_values,
    contact_values,
    days_ago,
)

# Noon UTC is still the same calendar day in New York.
NOON = dt.time(12, 0, tzinfo=dt.UTC)


@pytest.fixture
def account(tenant):
    return AccountFactory(tenant=tenant, signup_date=None)


def at(day, time=NOON):
    return dt.datetime.combine(day, time)


def feature_event(account, n, when, feature, event="feature_used", contact=None):
    return {
        "message_id": f"{account.pk}-{n}",
        "account_id": account.pk,
        "contact_id": contact.pk if contact else None,
        "event": event,
        "timestamp": when,
        "properties": {"feature": feature},
    }


def stored_values(tenant):
    return set(
        DailyValueRollup.objects.for_tenant(tenant).values_list("account_id", "day", "event", "prop", "value")
    )


@pytest.mark.parametrize(
    "current, before, expected",
    [(4, 10, -60.0), (10, 5, 100.0), (7, 7, 0.0), (0, 3, -100.0), (2, 3, -33.3), (5, 0, None), (0, 0, None)],
)
def test_trend_is_the_percent_change_against_the_window_before(current, before, expected):
    assert trend_percent(current, before) == expected


def test_trend_compares_the_window_with_the_one_before_it(tenant, account):
    MetricDefinitionFactory(
        tenant=tenant, key="login_trend", aggregation="trend", event_names=["login"], window_days=30
    )
    DailyRollupFactory(account=account, day=TODAY, count=1)
    DailyRollupFactory(account=account, day=days_ago(29), count=3)
    DailyRollupFactory(account=account, day=days_ago(30), count=6)
    DailyRollupFactory(account=account, day=days_ago(59), count=4)
    # Outside both windows, or another event: not counted.
    DailyRollupFactory(account=account, day=days_ago(60), count=100)
    DailyRollupFactory(account=account, day=TODAY + dt.timedelta(days=1), count=100)
    DailyRollupFactory(account=account, day=days_ago(40), event="export", count=100)
    new = AccountFactory(tenant=tenant)
    DailyRollupFactory(account=new, day=TODAY, count=5)
    silent = AccountFactory(tenant=tenant)

    metrics_compute(tenant=tenant, today=TODAY)

    assert account_values(account)["login_trend"] == -60.0
    # Nothing before: no percentage to speak of.
    assert account_values(new)["login_trend"] is None
    assert account_values(silent)["login_trend"] is None


def test_contact_trend_counts_only_that_contacts_events(tenant, account):
    MetricDefinitionFactory(
        tenant=tenant, key="login_trend", subject="contact", aggregation="trend", event_names=["login"], window_days=7
    )
    ann, ben = ContactFactory(account=account, last_seen_at=None), ContactFactory(account=account, last_seen_at=None)
    DailyRollupFactory(account=account, contact_ref=ann.pk, day=days_ago(1), count=6)
    DailyRollupFactory(account=account, contact_ref=ann.pk, day=days_ago(8), count=2)
    DailyRollupFactory(account=account, contact_ref=ben.pk, day=days_ago(8), count=5)

    metrics_compute(tenant=tenant, today=TODAY)

    assert contact_values(ann)["login_trend"] == 200.0
    assert contact_values(ben)["login_trend"] == -100.0


def test_distinct_values_counts_the_text_values_ingested_inside_the_window(tenant, account):
    MetricDefinitionFactory(
        tenant=tenant, key="breadth_7d", aggregation="distinct_values", event_names=["feature_used"],
        property="feature", window_days=7,
    )
    other = AccountFactory(tenant=tenant, signup_date=None)
    events_ingest(
        tenant=tenant,
        events=[
            feature_event(account, 1, at(TODAY), "reports"),
            feature_event(account, 2, at(days_ago(1)), "reports"),
            feature_event(account, 3, at(days_ago(6)), "exports"),
            feature_event(account, 4, at(days_ago(6)), "alerts"),
            # Too old, a number, another event: none of them count.
            feature_event(account, 5, at(days_ago(7)), "sharing"),
            feature_event(account, 6, at(days_ago(2)), 42),
            feature_event(account, 7, at(days_ago(2)), "api", event="page_viewed"),
            feature_event(other, 8, at(TODAY), "api"),
        ],
    )

    metrics_compute(tenant=tenant, today=TODAY)

    assert account_values(account)["breadth_7d"] == 3
    assert account_values(other)["breadth_7d"] == 1
    # Only the pair a metric reads is rolled up, once per account, day and value.
    assert {row[3] for row in stored_values(tenant)} == {"feature"}
    assert DailyValueRollup.objects.for_tenant(tenant).filter(account=account).count() == 5


def test_ingest_rolls_up_no_values_that_no_metric_reads(tenant, account):
    events_ingest(tenant=tenant, events=[feature_event(account, 1, at(TODAY), "reports")])

    assert not DailyValueRollup.objects.for_tenant(tenant).exists()


def test_distinct_values_without_events_is_zero(tenant, account):
    MetricDefinitionFactory(
        tenant=tenant, key="breadth_30d", aggregation="distinct_values", event_names=["feature_used"],
        property="feature",
    )

    metrics_compute(tenant=tenant, today=TODAY)

    assert account_values(account)["breadth_30d"] == 0


def test_creating_a_distinct_values_metric_rolls_up_the_events_already_stored(db):
    # 03:00 UTC is the evening before in New York: the rebuilt rows must use the tenant's day, as ingest does.
    tenant = TenantFactory(slug="nyc", timezone="America/New_York")
    account = AccountFactory(tenant=tenant, signup_date=None)
    long_value = "x" * 250
    events_ingest(
        tenant=tenant,
        events=[
            feature_event(account, 1, at(TODAY, dt.time(3, 0, tzinfo=dt.UTC)), "reports"),
            feature_event(account, 2, at(TODAY), "reports"),
            feature_event(account, 3, at(days_ago(3)), long_value),
            feature_event(account, 4, at(days_ago(3)), True),
            feature_event(account, 5, at(days_ago(3)), "api", event="page_viewed"),
        ],
    )
    assert not DailyValueRollup.objects.for_tenant(tenant).exists()

    metric_definition_create(
        tenant=tenant,
        fields={
            "key": "breadth_30d", "label": "Breadth", "event_names": ["feature_used"], "window_days": 30,
            "aggregation": "distinct_values", "property": "feature",
        },
    )
    rebuilt = stored_values(tenant)
    value_rollups_rebuild(tenant=tenant, event_names=["feature_used"], prop="feature")

    assert rebuilt == stored_values(tenant) == {
        (account.pk, days_ago(1), "feature_used", "feature", "reports"),
        (account.pk, TODAY, "feature_used", "feature", "reports"),
        (account.pk, days_ago(3), "feature_used", "feature", "x" * 200),
    }
    # Later events of the pair are rolled up by ingest itself, on the same days.
    events_ingest(tenant=tenant, events=[feature_event(account, 6, at(TODAY), "alerts")])
    metrics_compute(tenant=tenant, today=TODAY)
    assert account_values(account)["breadth_30d"] == 3


def test_changing_a_metric_to_distinct_values_rolls_up_its_property(tenant, account):
    events_ingest(
        tenant=tenant,
        events=[feature_event(account, 1, at(TODAY), "reports"), feature_event(account, 2, at(TODAY), "alerts")],
    )
    definition = metric_definition_create(
        tenant=tenant, fields={"key": "feature_uses", "label": "Feature uses", "event_names": ["feature_used"]}
    )
    assert not DailyValueRollup.objects.for_tenant(tenant).exists()

    metric_definition_update(
        tenant=tenant, definition=definition, fields={"aggregation": "distinct_values", "property": "feature"}
    )
    metrics_compute(tenant=tenant, today=TODAY)

    assert account_values(account)["feature_uses"] == 2


def test_value_rollups_are_rebuilt_for_the_tenant_only(tenant, other_tenant, account):
    theirs = AccountFactory(tenant=other_tenant)
    events_ingest(tenant=tenant, events=[feature_event(account, 1, at(TODAY), "reports")])
    events_ingest(tenant=other_tenant, events=[feature_event(theirs, 2, at(TODAY), "alerts")])

    value_rollups_rebuild(tenant=tenant, event_names=["feature_used"], prop="feature")

    assert {row[0] for row in stored_values(tenant)} == {account.pk}
    assert not DailyValueRollup.objects.for_tenant(other_tenant).exists()


def test_metrics_of_a_past_day_read_nothing_that_happened_after_it(tenant):
    """Data straddles TODAY: metrics computed as of TODAY must look as they did on TODAY."""
    MetricDefinitionFactory(tenant=tenant, key="logins_7d", event_names=["login"], window_days=7)
    MetricDefinitionFactory(tenant=tenant, key="login_trend", aggregation="trend", event_names=["login"], window_days=7)
    MetricDefinitionFactory(
        tenant=tenant, key="breadth_7d", aggregation="distinct_values", event_names=["feature_used"],
        property="feature", window_days=7,
    )
    MetricDefinitionFactory(
        tenant=tenant, key="nps_latest", aggregation="latest", event_names=["nps_answered"], property="score"
    )
    account = AccountFactory(tenant=tenant, signup_date=days_ago(100))
    ann = ContactFactory(account=account, last_seen_at=at(TODAY + dt.timedelta(days=5)))
    # Only ever seen after TODAY.
    ben = ContactFactory(account=account, last_seen_at=at(TODAY + dt.timedelta(days=2)))
    later = AccountFactory(tenant=tenant, signup_date=TODAY + dt.timedelta(days=3))
    for day, count in ((days_ago(10), 4), (days_ago(3), 2), (TODAY + dt.timedelta(days=5), 50)):
        DailyRollupFactory(account=account, contact_ref=ann.pk, day=day, count=count)
    DailyRollupFactory(account=account, contact_ref=ben.pk, day=TODAY + dt.timedelta(days=2), count=9)
    events_ingest(
        tenant=tenant,
        events=[
            feature_event(account, 1, at(days_ago(2)), "reports"),
            feature_event(account, 2, at(TODAY + dt.timedelta(days=1)), "alerts"),
        ],
    )
    DailyPropertyRollupFactory(account=account, day=days_ago(4), total=7, latest_value=7)
    DailyPropertyRollupFactory(account=account, day=TODAY + dt.timedelta(days=1), total=1, latest_value=1)

    metrics_compute(tenant=tenant, today=TODAY)

    values = account_values(account)
    # The feature event two days ago came without a contact; ann was last seen three days ago.
    assert values["days_since_last_seen"] == 2
    assert values["days_since_signup"] == 100
    assert (values["events_7d"], values["logins_7d"]) == (3, 2)
    assert values["login_trend"] == -50.0
    assert values["breadth_7d"] == 1
    assert values["nps_latest"] == 7
    assert contact_values(ann)["days_since_last_seen"] == 3
    assert contact_values(ben)["days_since_last_seen"] is None
    # An account that signs up later did not exist yet: no negative age.
    assert account_values(later)["days_since_signup"] is None
