import datetime as dt
import threading

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from lifecycle.models import AccountStage, StageTransition, TransitionKind
from lifecycle.services import account_move_stage, lifecycle_advance, stage_create, stage_update
from tests.factories import AccountFactory


def stage_of(tenant, account):
    return AccountStage.objects.for_tenant(tenant).get(account=account).stage.key


def transitions_of(tenant, account):
    return list(
        StageTransition.objects.for_tenant(tenant)
        .filter(account=account)
        .order_by("id")
        .values_list("from_key", "to_key", "kind")
    )


def test_new_accounts_start_in_the_initial_stage(tenant, lifecycle_stages):
    account = AccountFactory(tenant=tenant, mrr=0)

    moved = lifecycle_advance(tenant=tenant, account_ids=[account.pk])

    assert moved == {account.pk}
    assert stage_of(tenant, account) == "trial"
    assert transitions_of(tenant, account) == [("", "trial", TransitionKind.INITIAL)]


def test_an_account_moves_several_stages_in_one_pass_while_each_criteria_holds(tenant, lifecycle_stages):
    account = AccountFactory(tenant=tenant, mrr=2500)

    lifecycle_advance(tenant=tenant, account_ids=[account.pk])

    assert stage_of(tenant, account) == "growing"
    assert transitions_of(tenant, account) == [
        ("", "trial", TransitionKind.INITIAL),
        ("trial", "paying", TransitionKind.AUTOMATIC),
        ("paying", "growing", TransitionKind.AUTOMATIC),
    ]


def test_automatic_moves_record_the_explanation_of_the_entry_criteria_and_leave_the_why_to_their_kind(
    tenant, lifecycle_stages
):
    account = AccountFactory(tenant=tenant, mrr=300)

    lifecycle_advance(tenant=tenant, account_ids=[account.pk])

    transition = StageTransition.objects.for_tenant(tenant).get(account=account, to_key="paying")
    assert transition.by_user is None and transition.reason == ""
    assert transition.get_kind_display() == "Entry criteria met"
    assert transition.explanation["passed"] is True
    assert "account.mrr" in str(transition.explanation)


def test_an_account_stays_put_when_the_next_stage_criteria_fail(tenant, lifecycle_stages):
    account = AccountFactory(tenant=tenant, mrr=0)
    lifecycle_advance(tenant=tenant, account_ids=[account.pk])

    moved = lifecycle_advance(tenant=tenant, account_ids=[account.pk])

    assert moved == set()
    assert stage_of(tenant, account) == "trial"
    assert len(transitions_of(tenant, account)) == 1


def test_accounts_move_when_their_data_changes_between_runs(tenant, lifecycle_stages):
    account = AccountFactory(tenant=tenant, mrr=0)
    lifecycle_advance(tenant=tenant, account_ids=[account.pk])
    account.mrr = 50
    account.save()

    moved = lifecycle_advance(tenant=tenant, account_ids=[account.pk])

    assert moved == {account.pk}
    assert stage_of(tenant, account) == "paying"


def test_a_stage_without_criteria_is_never_entered_automatically(tenant, lifecycle_stages):
    account = AccountFactory(tenant=tenant, mrr=5000)

    lifecycle_advance(tenant=tenant, account_ids=[account.pk])
    lifecycle_advance(tenant=tenant, account_ids=[account.pk])

    assert stage_of(tenant, account) == "growing"


def test_a_terminal_stage_never_advances_automatically(tenant, alice, lifecycle_stages):
    account = AccountFactory(tenant=tenant, mrr=5000)
    account_move_stage(
        tenant=tenant, account=account, to_stage=lifecycle_stages["lost"], actor=alice, reason="Cancelled"
    )

    moved = lifecycle_advance(tenant=tenant, account_ids=[account.pk])

    assert moved == set()
    assert stage_of(tenant, account) == "lost"


def renewal_stages(tenant, alice, *, entered_from_any_earlier):
    """onboarding -> adopting (mrr >= 1000) -> renewal (renewal date within 90 days)."""
    stage_create(tenant=tenant, actor=alice, key="onboarding", name="Onboarding")
    stage_create(tenant=tenant, actor=alice, key="adopting", name="Adopting", entry_criteria_text="account.mrr >= 1000")
    stage_create(
        tenant=tenant,
        actor=alice,
        key="renewal",
        name="Renewal",
        entry_criteria_text="account.renewal_date within 90 days",
        entered_from_any_earlier=entered_from_any_earlier,
    )


def test_a_stage_entered_from_any_earlier_takes_accounts_that_never_met_the_stages_between(tenant, alice):
    renewal_stages(tenant, alice, entered_from_any_earlier=True)
    account = AccountFactory(tenant=tenant, mrr=100, renewal_date=dt.date.today() + dt.timedelta(days=20))

    lifecycle_advance(tenant=tenant, account_ids=[account.pk])

    assert stage_of(tenant, account) == "renewal"
    assert transitions_of(tenant, account) == [
        ("", "onboarding", TransitionKind.INITIAL),
        ("onboarding", "renewal", TransitionKind.AUTOMATIC),
    ]


def test_a_stage_entered_only_from_the_one_before_waits_for_the_stages_between(tenant, alice):
    renewal_stages(tenant, alice, entered_from_any_earlier=False)
    account = AccountFactory(tenant=tenant, mrr=100, renewal_date=dt.date.today() + dt.timedelta(days=20))

    lifecycle_advance(tenant=tenant, account_ids=[account.pk])

    assert stage_of(tenant, account) == "onboarding"


def test_a_stage_entered_from_any_earlier_still_leaves_terminal_stages_alone(tenant, alice, lifecycle_stages):
    stage_update(tenant=tenant, stage=lifecycle_stages["won_back"], actor=alice, entered_from_any_earlier=True)
    lost, paying = AccountFactory(tenant=tenant, mrr=5), AccountFactory(tenant=tenant, mrr=5)
    account_move_stage(tenant=tenant, account=lost, to_stage=lifecycle_stages["lost"], actor=alice, reason="Gone")

    lifecycle_advance(tenant=tenant, account_ids=[lost.pk, paying.pk])

    assert stage_of(tenant, lost) == "lost"
    assert transitions_of(tenant, paying)[-2:] == [
        ("trial", "paying", TransitionKind.AUTOMATIC),
        ("paying", "won_back", TransitionKind.AUTOMATIC),
    ]


def test_running_twice_records_each_transition_once(tenant, lifecycle_stages):
    accounts = [AccountFactory(tenant=tenant, mrr=mrr) for mrr in (0, 10, 2000)]
    ids = [a.pk for a in accounts]

    first = lifecycle_advance(tenant=tenant, account_ids=ids)
    second = lifecycle_advance(tenant=tenant, account_ids=ids)

    assert first == set(ids)
    assert second == set()
    assert StageTransition.objects.for_tenant(tenant).count() == 1 + 2 + 3


def test_chunks_give_the_same_result_as_one_pass(tenant, lifecycle_stages):
    accounts = [AccountFactory(tenant=tenant, mrr=mrr) for mrr in (0, 10, 2000, 5, 0)]

    lifecycle_advance(tenant=tenant, account_ids=[a.pk for a in accounts], chunk_size=2)

    assert [stage_of(tenant, a) for a in accounts] == ["trial", "paying", "growing", "paying", "trial"]


def test_queries_do_not_grow_with_the_number_of_accounts_that_stay(tenant, lifecycle_stages):
    def queries_for(count):
        ids = [AccountFactory(tenant=tenant, mrr=0).pk for _ in range(count)]
        lifecycle_advance(tenant=tenant, account_ids=ids)
        with CaptureQueriesContext(connection) as queries:
            lifecycle_advance(tenant=tenant, account_ids=ids)
        return len(queries)

    assert queries_for(3) == queries_for(40)


def test_queries_do_not_grow_with_the_number_of_accounts_that_move_whatever_their_criteria_read(tenant, alice):
    stage_create(tenant=tenant, actor=alice, key="new", name="New")
    # Every clause is explained, passed or not: stage, metric, health and owner are each read per account.
    stage_create(
        tenant=tenant, actor=alice, key="engaged", name="Engaged",
        entry_criteria_text=(
            'stage == "new" or metric.days_since_signup >= 0 or health.score >= 50 or days_in_stage >= 0 '
            "or account.owner exists"
        ),
    )
    stage_create(tenant=tenant, actor=alice, key="won", name="Won", entry_criteria_text="account.mrr > 0")

    def queries_for(count):
        ids = [AccountFactory(tenant=tenant, mrr=10, owner=alice).pk for _ in range(count)]
        with CaptureQueriesContext(connection) as queries:
            moved = lifecycle_advance(tenant=tenant, account_ids=ids)
        assert moved == set(ids)
        assert set(AccountStage.objects.for_tenant(tenant).filter(account_id__in=ids).values_list(
            "stage__key", flat=True
        )) == {"won"}
        return len(queries)

    assert queries_for(3) == queries_for(40)


def test_other_tenants_accounts_are_ignored(tenant, other_tenant, lifecycle_stages):
    outsider = AccountFactory(tenant=other_tenant, mrr=5000)

    moved = lifecycle_advance(tenant=tenant, account_ids=[outsider.pk])

    assert moved == set()
    assert not AccountStage.objects.for_tenant(other_tenant).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_overlapping_runs_do_not_record_a_transition_twice(tenant, lifecycle_stages):
    ids = [AccountFactory(tenant=tenant, mrr=mrr).pk for mrr in (0, 10, 2000) * 20]
    barrier = threading.Barrier(4)
    errors = []

    def run():
        try:
            barrier.wait()
            lifecycle_advance(tenant=tenant, account_ids=ids, chunk_size=7)
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    transitions = StageTransition.objects.for_tenant(tenant)
    assert transitions.filter(kind=TransitionKind.INITIAL).count() == 60
    assert transitions.filter(to_key="paying").count() == 40
    assert transitions.filter(to_key="growing").count() == 20
