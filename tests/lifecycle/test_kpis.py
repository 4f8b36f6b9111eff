import datetime as dt

import pytest
import time_machine

from lifecycle.selectors import lifecycle_kpis
from lifecycle.services import account_move_stage, lifecycle_advance
from tests.factories import AccountFactory


def at(day):
    return dt.datetime.fromisoformat(day).replace(hour=9, tzinfo=dt.timezone.utc)


@pytest.fixture
def history(tenant, alice, lifecycle_stages):
    """Four accounts placed in trial on a known day, three moved on later by hand.

    a: signed up in January, trial 10 days, paying 10 days, now growing.
    b: signed up in January, trial 20 days, now paying.
    c: signed up in February, trial 4 days, now paying.
    d: signed up in February, still in trial.
    """
    plan = {
        "a": ("2025-01-05", "2025-01-10", [("paying", "2025-01-20"), ("growing", "2025-01-30")]),
        "b": ("2025-01-20", "2025-01-21", [("paying", "2025-02-10")]),
        "c": ("2025-02-03", "2025-02-04", [("paying", "2025-02-08")]),
        "d": ("2025-02-10", "2025-02-11", []),
    }
    for name, (signup, placed, moves) in plan.items():
        account = AccountFactory(tenant=tenant, name=name, mrr=0, signup_date=dt.date.fromisoformat(signup))
        with time_machine.travel(at(placed), tick=False):
            lifecycle_advance(tenant=tenant, account_ids=[account.pk])
        for stage_key, day in moves:
            with time_machine.travel(at(day), tick=False):
                account_move_stage(
                    tenant=tenant,
                    account=account,
                    to_stage=lifecycle_stages[stage_key],
                    actor=alice,
                    reason="Test history",
                )


def test_accounts_per_stage(tenant, history):
    counts = {row["stage"]: row["accounts"] for row in lifecycle_kpis(tenant=tenant)["accounts_per_stage"]}

    assert counts == {"trial": 1, "paying": 2, "growing": 1, "lost": 0, "won_back": 0}


def test_median_days_in_each_stage_counts_completed_stays(tenant, history):
    rows = {
        row["stage"]: (row["median_days"], row["completed_stays"])
        for row in lifecycle_kpis(tenant=tenant)["median_days_in_stage"]
    }

    assert rows["trial"] == (10.0, 3)
    assert rows["paying"] == (10.0, 1)
    assert rows["growing"] == (None, 0)


def test_conversion_between_consecutive_stages_leaves_out_leaving_for_a_terminal_stage(tenant, history):
    rows = [
        (row["from_stage"], row["to_stage"], row["entered"], row["converted"], row["rate"])
        for row in lifecycle_kpis(tenant=tenant)["conversion"]
    ]

    # "lost" is terminal: going there from "growing" is no conversion.
    assert rows == [
        ("trial", "paying", 4, 3, 0.75),
        ("paying", "growing", 3, 1, 0.3333),
        ("lost", "won_back", 0, 0, None),
    ]


def test_time_to_onboard_by_signup_cohort_month_counts_those_still_onboarding(tenant, history):
    result = lifecycle_kpis(tenant=tenant)["time_to_onboard"]

    assert result == {
        "stage": "trial",
        "cohorts": [
            {"cohort": "2025-01", "accounts": 2, "median_days": 15.0, "still_onboarding": 0, "left": 0},
            {"cohort": "2025-02", "accounts": 1, "median_days": 4.0, "still_onboarding": 1, "left": 0},
        ],
    }


def test_an_account_that_left_during_onboarding_is_not_onboarded(tenant, alice, lifecycle_stages, history):
    account = AccountFactory(tenant=tenant, name="e", mrr=0, signup_date=dt.date(2025, 3, 2))
    with time_machine.travel(at("2025-03-03"), tick=False):
        lifecycle_advance(tenant=tenant, account_ids=[account.pk])
    with time_machine.travel(at("2025-03-20"), tick=False):
        account_move_stage(tenant=tenant, account=account, to_stage=lifecycle_stages["lost"], actor=alice, reason="Budget")

    cohorts = lifecycle_kpis(tenant=tenant)["time_to_onboard"]["cohorts"]

    assert cohorts[-1] == {"cohort": "2025-03", "accounts": 0, "median_days": None, "still_onboarding": 0, "left": 1}


def test_time_to_onboard_can_name_the_onboarding_stage(tenant, history):
    result = lifecycle_kpis(tenant=tenant, onboarding_stage_key="paying")["time_to_onboard"]

    assert result == {
        "stage": "paying",
        "cohorts": [
            {"cohort": "2025-01", "accounts": 1, "median_days": 20.0, "still_onboarding": 1, "left": 0},
            {"cohort": "2025-02", "accounts": 0, "median_days": None, "still_onboarding": 1, "left": 0},
        ],
    }


def test_kpis_of_a_tenant_without_history_are_empty(other_tenant):
    kpis = lifecycle_kpis(tenant=other_tenant)
    departures = kpis.pop("departures")

    assert kpis == {
        "accounts_per_stage": [],
        "median_days_in_stage": [],
        "conversion": [],
        "time_to_onboard": {"stage": None, "cohorts": []},
    }
    assert departures["reasons"] == [] and len(departures["months"]) == 12
    assert {
        (row["left"], row["in_lifecycle_at_start"], row["churn_rate"], row["mrr_lost"]) for row in departures["months"]
    } == {(0, 0, None, 0)}
