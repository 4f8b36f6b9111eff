"""The ready-made play for customers who leave: an exit interview at once, a win-back check two months later
unless they came back."""

import datetime as dt

import pytest
import time_machine

from lifecycle.services import account_move_stage, stages_apply_template
from playbooks.models import Run, RunStatus, Task
from playbooks.runner import steps_run_due
from playbooks.services import playbook_templates_install, playbooks_enroll
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db

MONDAY_NOON = dt.datetime(2024, 3, 4, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def stages(tenant, alice):
    applied = stages_apply_template(tenant=tenant, template_key="eight_stages", actor=alice)
    return {stage.key: stage for stage in applied}


@pytest.fixture
def acme(tenant, bob):
    return AccountFactory(tenant=tenant, name="Acme Rockets", owner=bob)


def leave(tenant, account, stages, alice):
    account_move_stage(tenant=tenant, account=account, to_stage=stages["churned"], actor=alice, reason="Budget cut")
    return playbooks_enroll(tenant=tenant, account_ids=[account.pk], stage_changes=[account.pk])


def run_due():
    while steps_run_due():
        pass


def test_a_customer_who_left_gets_an_exit_interview_now_and_a_win_back_check_two_months_later(
    tenant, alice, bob, acme, stages
):
    (playbook,) = playbook_templates_install(tenant=tenant, keys=["churned_exit_and_win_back"])

    with time_machine.travel(MONDAY_NOON, tick=False) as clock:
        assert leave(tenant, acme, stages, alice) == {playbook.pk: 1}
        run_due()
        (interview,) = Task.objects.for_tenant(tenant)
        clock.shift(dt.timedelta(days=60, minutes=1))
        run_due()

    win_back = Task.objects.for_tenant(tenant).exclude(pk=interview.pk).get()
    assert (interview.owner, interview.title) == (bob, "Exit interview: ask Acme Rockets why they left")
    assert interview.due_at == MONDAY_NOON + dt.timedelta(days=3)
    assert (win_back.owner, win_back.title) == (bob, "Win-back: check in with Acme Rockets")
    assert Run.objects.for_tenant(tenant).get().status == RunStatus.COMPLETED


def test_a_customer_won_back_before_the_check_gets_no_win_back_task(tenant, alice, acme, stages):
    playbook_templates_install(tenant=tenant, keys=["churned_exit_and_win_back"])

    with time_machine.travel(MONDAY_NOON, tick=False) as clock:
        leave(tenant, acme, stages, alice)
        run_due()
        clock.shift(dt.timedelta(days=20))
        account_move_stage(tenant=tenant, account=acme, to_stage=stages["expansion"], actor=alice, reason="Back")
        clock.shift(dt.timedelta(days=41))
        run_due()

    assert list(Task.objects.for_tenant(tenant).values_list("title", flat=True)) == [
        "Exit interview: ask Acme Rockets why they left"
    ]
    assert Run.objects.for_tenant(tenant).get().status == RunStatus.EXITED
