import datetime as dt

import pytest
import time_machine

from csplatform.customers.models import Account
from csplatform.rules import compile_criteria
from lifecycle.models import AccountStage
from lifecycle.services import account_move_stage, lifecycle_advance
from lifecycle.sla import SlaStatus, sla_status
from tests.factories import AccountFactory

START = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(
    ("days", "expected_days", "status"),
    [
        (0, 14, "on_track"),
        (14, 14, "on_track"),
        (15, 14, "behind"),
        (28, 14, "behind"),
        (29, 14, "stuck"),
        (400, None, "on_track"),
        (None, 14, None),
    ],
)
def test_sla_status_is_behind_after_the_expected_days_and_stuck_after_twice(days, expected_days, status):
    assert sla_status(days, expected_days) == status


@pytest.fixture
def accounts_in_trial(tenant, lifecycle_stages):
    """Three accounts entered the 14-day trial stage 3, 20 and 40 days before the test's now."""
    accounts = {}
    for days_ago in (3, 20, 40):
        with time_machine.travel(START - dt.timedelta(days=days_ago), tick=False):
            account = AccountFactory(tenant=tenant, mrr=0, name=f"in trial {days_ago} days")
            lifecycle_advance(tenant=tenant, account_ids=[account.pk])
        accounts[days_ago] = account
    return accounts


def test_the_sla_annotation_agrees_with_the_python_function(tenant, accounts_in_trial):
    with time_machine.travel(START, tick=False):
        rows = (
            AccountStage.objects.for_tenant(tenant)
            .with_sla(tenant)
            .values_list("account_id", "days_in_stage", "sla_status")
        )

        by_account = {account_id: (days, status) for account_id, days, status in rows}
        assert by_account == {
            accounts_in_trial[3].pk: (3, SlaStatus.ON_TRACK),
            accounts_in_trial[20].pk: (20, SlaStatus.BEHIND),
            accounts_in_trial[40].pk: (40, SlaStatus.STUCK),
        }
        for days, status in by_account.values():
            assert sla_status(days, 14) == status


def test_criteria_read_days_in_stage_and_stage_status_the_same_in_sql_and_python(tenant, accounts_in_trial):
    with time_machine.travel(START, tick=False):
        for text, expected in [
            ("days_in_stage >= 20", {20, 40}),
            ('stage.status == "behind"', {20}),
            ('stage.status == "on_track"', {3}),
            ('stage == "trial" and days_in_stage < 10', {3}),
        ]:
            criteria = compile_criteria(text, tenant=tenant)
            in_sql = set(criteria.filter(Account.objects.for_tenant(tenant)).values_list("pk", flat=True))
            in_python = {pk for pk, a in Account.objects.for_tenant(tenant).in_bulk().items() if criteria.matches(a)}
            wanted = {accounts_in_trial[days].pk for days in expected}
            assert in_sql == wanted, text
            assert in_python == wanted, text


def test_days_in_stage_restart_when_the_account_moves(tenant, alice, lifecycle_stages, accounts_in_trial):
    account = accounts_in_trial[40]
    with time_machine.travel(START, tick=False):
        account_move_stage(
            tenant=tenant, account=account, to_stage=lifecycle_stages["paying"], actor=alice, reason="Paid"
        )
        state = AccountStage.objects.for_tenant(tenant).with_sla(tenant).get(account=account)

    assert (state.days_in_stage, state.sla_status) == (0, SlaStatus.ON_TRACK)
    assert state.entered_at == START


def test_an_account_without_a_stage_has_no_stage_values(tenant, lifecycle_stages):
    account = AccountFactory(tenant=tenant)
    criteria = compile_criteria('stage == "trial"', tenant=tenant)

    assert not criteria.filter(Account.objects.for_tenant(tenant)).exists()
    assert criteria.matches(account) is False
