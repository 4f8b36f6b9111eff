import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from csplatform.tenancy.timezones import tenant_today
from health.models import HealthScore, HealthSnapshot
from health.services import (
    health_override_clear,
    health_override_set,
    health_score,
    health_settings_update,
    scorecard_create,
)

from ..factories import AccountFactory
from .conftest import make_account, place, set_metrics, thresholds

pytestmark = pytest.mark.django_db


def health_of(account):
    return HealthScore.objects.for_tenant(account.tenant).get(account=account)


def test_accounts_are_scored_with_their_stages_scorecard_else_the_tenant_default(
    tenant, default_card, onboarding, onboarding_card
):
    new = make_account(tenant, onboarding, active_contacts_7d=3, logins_30d=0)
    unstaged = make_account(tenant, None, active_contacts_7d=0, logins_30d=10)

    health_score(tenant=tenant, account_ids=[new.pk, unstaged.pk])

    assert (health_of(new).score, health_of(new).colour) == (75.0, "green")
    assert health_of(new).scorecard_version == onboarding_card.published_version
    assert (health_of(unstaged).score, health_of(unstaged).colour) == (50.0, "yellow")
    assert health_of(unstaged).breakdown[0]["value"] == 10


def test_a_second_run_on_the_same_day_updates_the_one_snapshot_of_that_day(tenant, default_card):
    account = make_account(tenant, logins_30d=2)
    health_score(tenant=tenant, account_ids=[account.pk])
    set_metrics(account, logins_30d=16)
    health_score(tenant=tenant, account_ids=[account.pk])

    snapshots = list(HealthSnapshot.objects.for_tenant(tenant).filter(account=account))
    assert [(s.day, s.score, s.colour) for s in snapshots] == [(tenant_today(tenant), 80.0, "green")]
    assert snapshots[0].breakdown[0]["value"] == 16


def test_scoring_again_with_nothing_changed_writes_no_snapshot(tenant, default_card):
    ids = [make_account(tenant, logins_30d=i).pk for i in range(3)]
    health_score(tenant=tenant, account_ids=ids)

    with CaptureQueriesContext(connection) as context:
        health_score(tenant=tenant, account_ids=ids)

    snapshot_table = HealthSnapshot._meta.db_table
    assert not [q["sql"] for q in context.captured_queries if q["sql"].startswith(f'INSERT INTO "{snapshot_table}"')]


def test_todays_snapshot_that_parted_from_the_health_row_is_written_again_with_the_scored_values(tenant, default_card):
    account = make_account(tenant, logins_30d=16)
    health_score(tenant=tenant, account_ids=[account.pk])
    scored = HealthSnapshot.objects.for_tenant(tenant).get(account=account)
    # Same score and colour, another breakdown: as a day replayed with other values leaves it.
    HealthSnapshot.objects.for_tenant(tenant).filter(pk=scored.pk).update(breakdown=[{"value": 1}])

    health_score(tenant=tenant, account_ids=[account.pk])

    assert HealthSnapshot.objects.for_tenant(tenant).get(account=account).breakdown == scored.breakdown


def test_a_health_row_that_parted_from_todays_snapshot_does_not_stop_the_snapshot_from_being_corrected(
    tenant, default_card
):
    account = make_account(tenant, logins_30d=16)
    health_score(tenant=tenant, account_ids=[account.pk])
    scored = HealthSnapshot.objects.for_tenant(tenant).get(account=account)
    HealthSnapshot.objects.for_tenant(tenant).filter(pk=scored.pk).update(breakdown=[{"value": 1}])
    HealthScore.objects.for_tenant(tenant).filter(account=account).update(breakdown=[{"value": 1}])

    health_score(tenant=tenant, account_ids=[account.pk])

    assert HealthSnapshot.objects.for_tenant(tenant).get(account=account).breakdown == scored.breakdown
    assert health_of(account).breakdown == scored.breakdown


def test_returns_the_accounts_whose_colour_changed(tenant, default_card):
    steady = make_account(tenant, logins_30d=20)
    falling = make_account(tenant, logins_30d=20)
    ids = [steady.pk, falling.pk]
    assert sorted(health_score(tenant=tenant, account_ids=ids)) == sorted(ids)

    set_metrics(falling, logins_30d=3)
    assert health_score(tenant=tenant, account_ids=ids) == [falling.pk]
    assert health_score(tenant=tenant, account_ids=ids) == []


def test_query_count_per_chunk_does_not_grow_with_the_chunk(tenant, default_card, onboarding, onboarding_card):
    def queries_for(count):
        accounts = [make_account(tenant, onboarding if i % 2 else None, logins_30d=i, active_contacts_7d=i) for i in range(count)]
        ids = [account.pk for account in accounts]
        health_score(tenant=tenant, account_ids=ids[:1])  # some accounts already have a health row
        with CaptureQueriesContext(connection) as context:
            health_score(tenant=tenant, account_ids=ids)
        return len(context.captured_queries)

    assert queries_for(3) == queries_for(40)


def test_chunks_add_a_fixed_number_of_queries_each(tenant, default_card):
    ids = [make_account(tenant, logins_30d=i).pk for i in range(12)]
    # Scored once first, so that every measured run rewrites the same rows: none but their computed_at.
    health_score(tenant=tenant, account_ids=ids)

    def queries(chunk_size):
        with CaptureQueriesContext(connection) as context:
            health_score(tenant=tenant, account_ids=ids, chunk_size=chunk_size)
        return len(context.captured_queries)

    one, three, six = queries(12), queries(4), queries(2)
    assert three - one == (six - three) / 3 * 2
    assert three > one


def test_every_account_of_the_tenant_is_scored_when_no_ids_are_given(tenant, other_tenant, default_card):
    mine = [make_account(tenant, logins_30d=5) for _ in range(3)]
    theirs = make_account(other_tenant, logins_30d=5)

    health_score(tenant=tenant, chunk_size=2)

    assert HealthScore.objects.for_tenant(tenant).count() == len(mine)
    assert not HealthScore.objects.for_tenant(other_tenant).filter(account=theirs).exists()


def test_another_tenants_account_ids_are_ignored(tenant, other_tenant, default_card):
    theirs = make_account(other_tenant, logins_30d=5)
    assert health_score(tenant=tenant, account_ids=[theirs.pk]) == []
    assert not HealthScore.objects.dangerously_all_tenants().filter(account=theirs).exists()


def test_a_tenant_without_scorecards_scores_nothing(tenant):
    account = make_account(tenant, logins_30d=5)
    assert health_score(tenant=tenant, account_ids=[account.pk]) == []
    assert not HealthScore.objects.for_tenant(tenant).exists()


def test_deltas_compare_with_the_snapshots_of_7_and_30_days_back(tenant, default_card):
    account = make_account(tenant, logins_30d=2)
    today = tenant_today(tenant)
    health_score(tenant=tenant, account_ids=[account.pk], today=today - dt.timedelta(days=30))
    set_metrics(account, logins_30d=8)
    health_score(tenant=tenant, account_ids=[account.pk], today=today - dt.timedelta(days=7))
    set_metrics(account, logins_30d=20)
    health_score(tenant=tenant, account_ids=[account.pk], today=today)

    health = health_of(account)
    assert (health.score, health.delta_7d, health.delta_30d) == (100.0, 60.0, 90.0)


def test_deltas_are_empty_without_history(tenant, default_card):
    account = make_account(tenant, logins_30d=2)
    health_score(tenant=tenant, account_ids=[account.pk])
    assert (health_of(account).delta_7d, health_of(account).delta_30d) == (None, None)


def test_an_override_holds_until_it_expires_while_the_computed_score_stays_current(tenant, default_card, alice):
    account = make_account(tenant, logins_30d=20)
    health_score(tenant=tenant, account_ids=[account.pk])
    health_override_set(
        tenant=tenant, account=account, actor=alice, colour="red", reason="Champion left the company",
        expires_at=timezone.now() + dt.timedelta(days=14),
    )
    set_metrics(account, logins_30d=18)
    assert health_score(tenant=tenant, account_ids=[account.pk]) == []

    health = health_of(account)
    assert (health.colour, health.score) == ("red", 90.0)
    assert (health.computed_score, health.computed_colour) == (90.0, "green")
    assert health.override_reason == "Champion left the company" and health.override_by == alice

    HealthScore.objects.for_tenant(tenant).filter(pk=health.pk).update(override_expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert health_score(tenant=tenant, account_ids=[account.pk]) == [account.pk]

    health = health_of(account)
    assert (health.colour, health.score) == ("green", 90.0)
    assert (health.override_colour, health.override_reason, health.override_at) == ("", "", None)


def test_a_score_override_takes_its_colour_from_the_bands(tenant, default_card, alice):
    account = make_account(tenant, logins_30d=20)
    health_score(tenant=tenant, account_ids=[account.pk])
    health = health_override_set(tenant=tenant, account=account, actor=alice, score=55, reason="Renewal talks are tense")
    assert (health.score, health.colour, health.computed_colour) == (55, "yellow", "green")

    assert health_override_clear(tenant=tenant, account=account, actor=alice) is True
    health = health_of(account)
    assert (health.score, health.colour) == (100.0, "green")
    assert health_override_clear(tenant=tenant, account=account, actor=alice) is False


def test_tenant_colour_bands_apply(tenant, default_card, alice):
    account = make_account(tenant, logins_30d=16)
    health_settings_update(tenant=tenant, actor=alice, red_below=50, green_from=90)
    health_score(tenant=tenant, account_ids=[account.pk])
    assert health_of(account).colour == "yellow"


def test_accounts_without_a_fitting_scorecard_are_left_alone(tenant, onboarding, onboarding_card):
    elsewhere = AccountFactory(tenant=tenant)
    set_metrics(elsewhere, active_contacts_7d=4)
    assert health_score(tenant=tenant, account_ids=[elsewhere.pk]) == []
    assert not HealthScore.objects.for_tenant(tenant).exists()


def test_a_customer_who_left_keeps_the_score_and_history_it_had_when_it_left(tenant, default_card, churned):
    account = make_account(tenant, logins_30d=4)
    health_score(tenant=tenant, account_ids=[account.pk])
    left_with = health_of(account)
    place(account, churned)
    set_metrics(account, logins_30d=20)

    assert health_score(tenant=tenant, account_ids=[account.pk]) == []

    kept = health_of(account)
    assert (kept.score, kept.colour, kept.breakdown) == (left_with.score, left_with.colour, left_with.breakdown)
    assert [s.score for s in HealthSnapshot.objects.for_tenant(tenant).filter(account=account)] == [20.0]


def test_an_override_on_a_customer_who_left_gives_way_to_its_last_score_when_it_expires(
    tenant, default_card, churned, alice
):
    account = make_account(tenant, logins_30d=4)
    health_score(tenant=tenant, account_ids=[account.pk])
    place(account, churned)
    health_override_set(tenant=tenant, account=account, actor=alice, score=70, reason="Back in talks",
                        expires_at=timezone.now() + dt.timedelta(days=7))
    assert health_score(tenant=tenant, account_ids=[account.pk]) == []
    assert (health_of(account).score, health_of(account).colour) == (70, "green")

    HealthScore.objects.for_tenant(tenant).filter(account=account).update(override_expires_at=timezone.now())
    assert health_score(tenant=tenant, account_ids=[account.pk]) == [account.pk]

    health = health_of(account)
    assert (health.score, health.colour) == (20.0, "red")
    assert (health.override_score, health.override_reason, health.override_at) == (None, "", None)


def test_a_terminal_stage_with_a_scorecard_of_its_own_scores_its_accounts(tenant, default_card, churned):
    win_back = scorecard_create(
        tenant=tenant, actor=None, name="Win-back", stage=churned, measures=[thresholds("logins_30d", 0, 10)]
    )
    account = make_account(tenant, churned, logins_30d=10)

    health_score(tenant=tenant, account_ids=[account.pk])

    assert (health_of(account).score, health_of(account).scorecard_version) == (100.0, win_back.published_version)
