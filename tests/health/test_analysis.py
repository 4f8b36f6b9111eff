import datetime as dt

import pytest
from django.utils import timezone

from csplatform.customers.models import DailyRollup
from csplatform.rules.models import MetricDefinition
from csplatform.tenancy.timezones import tenant_today, tenant_zone
from health.analysis import health_distribution, health_why, scorecard_backtest, scorecard_preview
from health.models import HealthScore, HealthSnapshot, Scorecard
from health.scoring import score_account
from health.defaults import scorecards_apply_defaults
from health.services import health_backfill, health_score
from lifecycle.models import StageTransition

from ..factories import AccountFactory, ContactFactory
from .conftest import make_account, make_stage, place, set_metrics, thresholds

pytestmark = pytest.mark.django_db


def test_why_explains_the_change_since_last_week_by_measure(tenant, default_card):
    account = make_account(tenant, logins_30d=18)
    today = tenant_today(tenant)
    health_score(tenant=tenant, account_ids=[account.pk], today=today - dt.timedelta(days=7))
    set_metrics(account, logins_30d=5)
    health_score(tenant=tenant, account_ids=[account.pk], today=today)

    why = health_why(tenant=tenant, account=account)

    assert why["score_change"] == -65.0
    assert why["summary"] == (
        f"Health fell from 90 (green) on {today - dt.timedelta(days=7):%b %-d, %Y} to 25 (red) on {today:%b %-d, %Y}."
    )
    assert [change["text"] for change in why["changes"]] == ["Logins in the last 30 days fell from 18 to 5: -65 points"]
    assert why["changes"][0]["old_value"] == 18 and why["changes"][0]["new_points"] == 25


def test_why_reads_the_latest_snapshot_on_or_before_each_day(tenant, default_card):
    account = make_account(tenant, logins_30d=10)
    today = tenant_today(tenant)
    health_score(tenant=tenant, account_ids=[account.pk], today=today - dt.timedelta(days=20))
    set_metrics(account, logins_30d=20)
    health_score(tenant=tenant, account_ids=[account.pk], today=today - dt.timedelta(days=2))

    why = health_why(tenant=tenant, account=account, from_day=today - dt.timedelta(days=10), to_day=today)

    assert (why["from"]["score"], why["to"]["score"]) == (50.0, 100.0)
    assert why["changes"][0]["text"] == "Logins in the last 30 days rose from 10 to 20: +50 points"


def test_why_of_a_customer_who_left_says_since_when_nothing_scored_it(tenant, default_card, churned):
    account = make_account(tenant, logins_30d=10)
    today = tenant_today(tenant)
    health_score(tenant=tenant, account_ids=[account.pk], today=today - dt.timedelta(days=12))
    place(account, churned)
    health_score(tenant=tenant, account_ids=[account.pk], today=today)

    why = health_why(tenant=tenant, account=account)

    left_day = today - dt.timedelta(days=12)
    assert why["summary"] == f"Health has not been scored since {left_day:%b %-d, %Y}, when it was 50 (yellow)."
    assert why["score_change"] == 0 and why["changes"] == []


def test_why_without_history_says_so(tenant, default_card):
    account = make_account(tenant, logins_30d=10)
    why = health_why(tenant=tenant, account=account)
    assert why["changes"] == [] and "no health snapshot" in why["summary"]


def test_preview_shows_the_distribution_before_and_after_and_who_changes_colour(tenant, default_card):
    low = make_account(tenant, logins_30d=6)
    mid = make_account(tenant, logins_30d=12)
    high = make_account(tenant, logins_30d=20)
    stricter = [thresholds("logins_30d", 5, 60)]

    preview = scorecard_preview(tenant=tenant, scorecard=default_card, measures=stricter)

    assert preview["accounts"] == 3
    assert preview["before"]["colours"] == {"green": 1, "yellow": 1, "red": 1, "unscored": 0}
    assert preview["after"]["colours"] == {"green": 0, "yellow": 0, "red": 3, "unscored": 0}
    assert {change["account_id"] for change in preview["colour_changes"]} == {mid.pk, high.pk}
    assert low.pk not in {change["account_id"] for change in preview["colour_changes"]}
    assert preview["after"]["histogram"] == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert not HealthScore.objects.for_tenant(tenant).exists()


def test_preview_of_the_default_scorecard_leaves_out_the_customers_who_left(tenant, default_card, churned):
    make_account(tenant, logins_30d=20)
    make_account(tenant, churned, logins_30d=20)

    preview = scorecard_preview(tenant=tenant, scorecard=default_card, measures=[thresholds("logins_30d", 5, 60)])

    assert preview["accounts"] == 1


def test_preview_of_a_stage_scorecard_covers_only_that_stage(tenant, default_card, onboarding, onboarding_card):
    make_account(tenant, onboarding, active_contacts_7d=1)
    make_account(tenant, None, logins_30d=20)
    preview = scorecard_preview(tenant=tenant, scorecard=onboarding_card, measures=[thresholds("active_contacts_7d", 0, 1)])
    assert preview["accounts"] == 1
    assert preview["before"]["colours"]["red"] == 1 and preview["after"]["colours"]["green"] == 1


def _snapshot(account, day, logins):
    measures = [thresholds("logins_30d", 0, 20)]
    result = score_account(measures, {"logins_30d": logins})
    HealthSnapshot.objects.create(
        tenant=account.tenant, account=account, day=day, score=result.score, colour=result.colour, breakdown=result.breakdown
    )


def test_backtest_replays_a_version_over_stored_raw_values(tenant):
    today = tenant_today(tenant)
    churn_day = today - dt.timedelta(days=10)
    churned = AccountFactory(tenant=tenant, attributes={"churned_at": churn_day.isoformat()})
    missed = AccountFactory(tenant=tenant, attributes={"churned_at": churn_day.isoformat()})
    healthy = AccountFactory(tenant=tenant)
    recovered = AccountFactory(tenant=tenant)
    falling = AccountFactory(tenant=tenant)
    for n in range(30, 0, -1):
        day = today - dt.timedelta(days=n)
        # Logins fade from 20 to 0 over the 20 days before churn, then nothing.
        _snapshot(churned, day, max(0, min(20, (churn_day - day).days)))
        _snapshot(missed, day, 20)
        _snapshot(healthy, day, 20)
        _snapshot(recovered, day, 5 if n == 15 else 20)
        _snapshot(falling, day, 5 if n <= 3 else 20)

    report = scorecard_backtest(tenant=tenant, measures=[thresholds("logins_30d", 0, 20)], days=30, today=today)

    # Red below 40 points = fewer than 8 logins: churn_day - 7; yellow from 14 logins: churn_day - 13.
    by_id = {row["account_id"]: row for row in report["churned_accounts"]}
    assert by_id[churned.pk]["red_days_before_churn"] == 7
    assert by_id[churned.pk]["flagged_days_before_churn"] == 13
    assert by_id[missed.pk]["flagged_days_before_churn"] is None
    red = report["levels"]["red"]
    assert (red["churned"], red["caught"], red["recall"]) == (2, 1, 0.5)
    # A dip that recovered is no alarm; an account red at the end is.
    assert (red["non_churned"], red["non_churned_flagged"], red["precision"]) == (3, 1, 0.5)
    assert report["levels"]["red_or_yellow"]["median_lead_days"] == 13
    assert report["sources_without_history"] == []


def test_backtest_of_a_gentler_version_flags_later(tenant):
    today = tenant_today(tenant)
    churn_day = today - dt.timedelta(days=5)
    account = AccountFactory(tenant=tenant, attributes={"churned_at": churn_day.isoformat()})
    for n in range(25, 0, -1):
        day = today - dt.timedelta(days=n)
        _snapshot(account, day, max(0, (churn_day - day).days))
    gentle = [thresholds("logins_30d", 0, 10), thresholds("nps_avg_90d", 0, 10)]

    report = scorecard_backtest(tenant=tenant, measures=gentle, days=25, today=today)

    assert report["churned_accounts"][0]["red_days_before_churn"] == 3
    assert report["sources_without_history"] == ["nps_avg_90d"]


def test_distribution_counts_current_customers_per_colour_and_every_account_per_stage(
    tenant, default_card, onboarding, onboarding_card, churned
):
    make_account(tenant, onboarding, active_contacts_7d=4)
    make_account(tenant, onboarding, active_contacts_7d=0)
    make_account(tenant, None, logins_30d=10)
    AccountFactory(tenant=tenant)
    left = make_account(tenant, None, logins_30d=0)
    health_score(tenant=tenant)
    place(left, churned)

    distribution = health_distribution(tenant=tenant)

    assert distribution["colours"] == {"green": 1, "yellow": 1, "red": 1, "unscored": 1}
    assert distribution["stages"][0] == {"stage": "onboarding", "name": "Onboarding", "green": 1, "yellow": 0, "red": 1, "unscored": 0}
    churned_row = {"stage": "churned", "name": "Churned", "green": 0, "yellow": 0, "red": 1, "unscored": 0}
    assert distribution["stages"][1] == churned_row
    assert distribution["stages"][-1]["stage"] is None and distribution["stages"][-1]["yellow"] == 1


def test_default_scorecards_fit_each_kind_of_stage_and_create_the_metrics_they_read(tenant):
    for position, key in enumerate(["onboarding", "adopting", "expanding", "renewal", "pilot"]):
        make_stage(tenant, key, position=position)
    make_stage(tenant, "churned", position=9, is_terminal=True)

    created = scorecards_apply_defaults(tenant=tenant)

    by_stage = {card.stage.key if card.stage else None: card for card in created}
    assert set(by_stage) == {"onboarding", "adopting", "expanding", "renewal", None}
    assert by_stage["onboarding"].published_version.measures[0]["source"] == "setup_events_90d"
    assert by_stage["adopting"].published_version.measures[0]["source"] == "active_contacts_30d"
    assert "feature_breadth_30d" in [m["source"] for m in by_stage["adopting"].published_version.measures]
    for mature in ("expanding", "renewal"):
        sources = [m["source"] for m in by_stage[mature].published_version.measures]
        assert {"nps_avg_90d", "usage_trend_30d"} <= set(sources)
    keys = set(MetricDefinition.objects.for_tenant(tenant).values_list("key", flat=True))
    assert {"logins_30d", "setup_events_90d", "feature_uses_30d", "nps_avg_90d", "support_tickets_30d"} <= keys
    assert MetricDefinition.objects.for_tenant(tenant).get(key="feature_breadth_30d").aggregation == "distinct_values"
    assert MetricDefinition.objects.for_tenant(tenant).get(key="usage_trend_30d").aggregation == "trend"

    assert scorecards_apply_defaults(tenant=tenant) == []
    assert Scorecard.objects.for_tenant(tenant).count() == 5


def test_default_scorecards_keep_a_tenants_own_metric_of_the_same_key(tenant, logins_metric):
    make_stage(tenant, "onboarding")
    logins_metric.event_names = ["signed_in"]
    logins_metric.save()
    scorecards_apply_defaults(tenant=tenant)
    assert MetricDefinition.objects.for_tenant(tenant).get(key="logins_30d").event_names == ["signed_in"]


def test_backfill_builds_a_daily_history_from_the_rollups(tenant):
    today = tenant_today(tenant)
    scorecards_apply_defaults(tenant=tenant)
    old = AccountFactory(tenant=tenant, signup_date=today - dt.timedelta(days=200))
    contact = ContactFactory(account=old, tenant=tenant)
    recent = AccountFactory(tenant=tenant, signup_date=today - dt.timedelta(days=3))
    # Busy until 20 days ago, silent since: the 30-day window empties day by day.
    for n in range(20, 41):
        DailyRollup.objects.create(
            tenant=tenant, account=old, contact_ref=contact.pk, day=today - dt.timedelta(days=n), event="login", count=10
        )

    written = health_backfill(tenant=tenant, days=10, today=today)

    assert written == 10 + 4
    history = list(HealthSnapshot.objects.for_tenant(tenant).filter(account=old).order_by("day"))
    assert [s.day for s in history] == [today - dt.timedelta(days=n) for n in range(9, -1, -1)]
    events = [s.breakdown[0]["value"] for s in history]
    assert events[0] > events[-1] and history[0].score > history[-1].score
    assert HealthSnapshot.objects.for_tenant(tenant).filter(account=recent).count() == 4
    health = HealthScore.objects.for_tenant(tenant).get(account=old)
    assert health.delta_7d == round(history[-1].score - history[2].score, 1)
    assert health.computed_at <= timezone.now()


def test_backfill_scores_each_past_day_with_the_stage_held_at_the_end_of_that_day(tenant):
    onboarding, adopting = make_stage(tenant, "onboarding", position=0), make_stage(tenant, "adopting", position=1)
    scorecards_apply_defaults(tenant=tenant)
    cards = {card.stage_id: card.published_version_id for card in Scorecard.objects.for_tenant(tenant)}
    today = tenant_today(tenant)
    zone = tenant_zone(tenant)

    def day(n):
        return today - dt.timedelta(days=n)

    def late_on(n):
        return dt.datetime.combine(day(n), dt.time(23, 30), tzinfo=zone)

    moved = AccountFactory(tenant=tenant, signup_date=day(30))
    StageTransition.objects.create(
        tenant=tenant, account=moved, to_stage=onboarding, to_key="onboarding", at=late_on(5), kind="initial"
    )
    StageTransition.objects.create(
        tenant=tenant, account=moved, from_stage=onboarding, to_stage=adopting, from_key="onboarding",
        to_key="adopting", at=late_on(2), kind="automatic",
    )
    place(moved, adopting)
    # Placed without any recorded move: the default scores its past, its stage only today.
    unrecorded = AccountFactory(tenant=tenant, signup_date=day(30))
    place(unrecorded, onboarding)

    health_backfill(tenant=tenant, days=7, today=today)

    def versions(account):
        snapshots = HealthSnapshot.objects.for_tenant(tenant).filter(account=account).order_by("day")
        return [snapshot.scorecard_version_id for snapshot in snapshots]

    default, onboarding_card, adopting_card = cards[None], cards[onboarding.pk], cards[adopting.pk]
    assert versions(moved) == [default] + [onboarding_card] * 3 + [adopting_card] * 3
    assert versions(unrecorded) == [default] * 6 + [onboarding_card]
    assert HealthScore.objects.for_tenant(tenant).get(account=moved).scorecard_version_id == adopting_card
