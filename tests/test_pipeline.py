"""The recompute pipeline, from an ingested event to the account's stage and health."""

import datetime as dt

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from csplatform import pipeline
from csplatform.customers.models import Account
from csplatform.customers.services import account_mark_dirty
from csplatform.rules.models import AccountMetrics
from health.defaults import scorecards_apply_defaults
from health.models import HealthScore
from lifecycle.models import AccountStage, StageTransition
from lifecycle.services import lifecycle_advance, stages_apply_template

from .factories import AccountFactory, ContactFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def configured_tenant(tenant):
    stages_apply_template(tenant=tenant, template_key="onboarding_to_renewal", actor=None)
    scorecards_apply_defaults(tenant=tenant)
    return tenant


def send_logins(api, account, contact, days):
    now = timezone.now()
    events = [
        {
            "message_id": f"{account.external_id}-{contact.external_id}-{day}-{n}",
            "account": account.external_id,
            "contact": contact.external_id,
            "event": "login",
            "timestamp": (now - dt.timedelta(days=day, minutes=n)).isoformat(),
        }
        for day in range(days)
        for n in range(3)
    ]
    response = api.post("/api/v1/events/batch", {"events": events}, format="json")
    assert response.status_code == 200, response.content


def test_an_ingested_event_reaches_metrics_health_and_stage(api, configured_tenant):
    account = AccountFactory(tenant=configured_tenant, signup_date=timezone.localdate() - dt.timedelta(days=60))
    contact = ContactFactory(account=account)
    send_logins(api, account, contact, days=30)

    totals = pipeline.recompute_dirty(tenant=configured_tenant)

    assert totals["accounts"] == 1
    metrics = AccountMetrics.objects.for_tenant(configured_tenant).get(account=account)
    assert metrics.values["events_30d"] == 90
    assert HealthScore.objects.for_tenant(configured_tenant).get(account=account).score is not None
    state = AccountStage.objects.for_tenant(configured_tenant).select_related("stage").get(account=account)
    first = StageTransition.objects.for_tenant(configured_tenant).filter(account=account).order_by("at", "id").first()
    assert first.kind == "initial"
    assert state.stage is not None
    assert not Account.objects.for_tenant(configured_tenant).dirty().exists()


def test_an_account_changed_during_a_run_stays_dirty_for_the_next(configured_tenant):
    account = AccountFactory(tenant=configured_tenant)
    later = timezone.now() + dt.timedelta(seconds=30)
    account_mark_dirty(tenant=configured_tenant, account_ids=[account.pk], now=later)

    pipeline.recompute_dirty(tenant=configured_tenant)

    assert list(Account.objects.for_tenant(configured_tenant).dirty()) == [account]


def test_an_older_mark_arriving_late_does_not_hide_a_newer_change(configured_tenant):
    account = AccountFactory(tenant=configured_tenant)
    later = timezone.now() + dt.timedelta(seconds=30)
    account_mark_dirty(tenant=configured_tenant, account_ids=[account.pk], now=later)
    account_mark_dirty(tenant=configured_tenant, account_ids=[account.pk])

    pipeline.recompute_dirty(tenant=configured_tenant)

    assert list(Account.objects.for_tenant(configured_tenant).dirty()) == [account]


def test_running_the_pipeline_twice_records_no_extra_transition(configured_tenant):
    accounts = AccountFactory.create_batch(3, tenant=configured_tenant)
    pipeline.mark_all_dirty(tenant=configured_tenant)
    pipeline.recompute_dirty(tenant=configured_tenant)
    transitions = StageTransition.objects.for_tenant(configured_tenant).count()

    pipeline.mark_all_dirty(tenant=configured_tenant)
    pipeline.recompute_dirty(tenant=configured_tenant)

    assert StageTransition.objects.for_tenant(configured_tenant).count() == transitions
    assert AccountStage.objects.for_tenant(configured_tenant).count() == len(accounts)


def test_the_pipeline_never_touches_another_tenants_accounts(configured_tenant, other_tenant):
    foreign = AccountFactory(tenant=other_tenant)
    AccountFactory(tenant=configured_tenant)
    pipeline.mark_all_dirty(tenant=configured_tenant)

    pipeline.recompute_dirty(tenant=configured_tenant)

    assert not AccountMetrics.objects.for_tenant(other_tenant).exists()
    assert Account.objects.for_tenant(other_tenant).get().pk == foreign.pk


SCHEDULED = []


def record_schedule(tenant_id):
    SCHEDULED.append(tenant_id)


def test_marking_accounts_dirty_schedules_a_recompute_after_commit(tenant, settings, django_capture_on_commit_callbacks):
    SCHEDULED.clear()
    settings.CSP_ACCOUNTS_CHANGED_HOOK = "tests.test_pipeline.record_schedule"
    account = AccountFactory(tenant=tenant)

    with django_capture_on_commit_callbacks(execute=True):
        account_mark_dirty(tenant=tenant, account_ids=[account.pk])
        assert SCHEDULED == []

    assert SCHEDULED == [tenant.pk]


def test_a_recompute_asked_for_during_a_run_is_done_by_that_run_before_it_returns(configured_tenant, monkeypatch):
    """The second request finds the run in flight and returns at once; the run goes round again for it."""
    from csplatform.tasks import recompute_dirty_task

    first, late = AccountFactory(tenant=configured_tenant), AccountFactory(tenant=configured_tenant)
    account_mark_dirty(tenant=configured_tenant, account_ids=[first.pk])
    real_recompute, passes = pipeline.recompute_dirty, []

    def recompute_while_a_change_arrives(*, tenant):
        totals = real_recompute(tenant=tenant)
        passes.append(totals["accounts"])
        if len(passes) == 1:
            account_mark_dirty(tenant=tenant, account_ids=[late.pk])
            assert recompute_dirty_task.apply(args=[tenant.pk]).get() is None
        return totals

    monkeypatch.setattr(pipeline, "recompute_dirty", recompute_while_a_change_arrives)
    recompute_dirty_task.apply(args=[configured_tenant.pk]).get()

    assert passes == [1, 1]
    assert not Account.objects.for_tenant(configured_tenant).dirty().exists()


threads_need_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite runs a pass in one thread (CSP_PIPELINE_THREADS=1)"
)
postgresql_row_locks = pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite locks the whole file")


@threads_need_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_pass_of_several_chunks_in_threads_recomputes_every_account_once_and_clears_every_mark(configured_tenant):
    accounts = AccountFactory.create_batch(12, tenant=configured_tenant)
    pipeline.mark_all_dirty(tenant=configured_tenant)

    totals = pipeline.recompute_dirty(tenant=configured_tenant, chunk_size=5, threads=3)

    assert totals["accounts"] == len(accounts)
    assert HealthScore.objects.for_tenant(configured_tenant).count() == len(accounts)
    assert AccountStage.objects.for_tenant(configured_tenant).count() == len(accounts)
    assert StageTransition.objects.for_tenant(configured_tenant).filter(kind="initial").count() == len(accounts)
    assert not Account.objects.for_tenant(configured_tenant).dirty().exists()


@threads_need_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_chunk_failing_in_a_thread_fails_the_pass_and_keeps_its_accounts_marked(configured_tenant, monkeypatch):
    accounts = AccountFactory.create_batch(12, tenant=configured_tenant)
    failing = accounts[7].pk
    real_recompute = pipeline.recompute_accounts

    def recompute_failing_one_chunk(*, tenant, account_ids):
        if failing in account_ids:
            raise RuntimeError("chunk failed")
        return real_recompute(tenant=tenant, account_ids=account_ids)

    monkeypatch.setattr(pipeline, "recompute_accounts", recompute_failing_one_chunk)
    pipeline.mark_all_dirty(tenant=configured_tenant)

    with pytest.raises(RuntimeError, match="chunk failed"):
        pipeline.recompute_dirty(tenant=configured_tenant, chunk_size=5, threads=2)

    assert failing in set(Account.objects.for_tenant(configured_tenant).dirty().values_list("pk", flat=True))


@postgresql_row_locks
@pytest.mark.django_db(transaction=True)
def test_the_stage_step_does_not_wait_for_an_ingest_transaction_referencing_the_same_accounts(configured_tenant):
    accounts = AccountFactory.create_batch(3, tenant=configured_tenant)
    ingest = connections.create_connection("default")
    ingest.set_autocommit(False)
    try:
        with ingest.cursor() as cursor:
            # What an ingest transaction's foreign-key checks hold on its accounts as it commits.
            cursor.execute("SELECT id FROM customers_account WHERE id = ANY(%s) FOR KEY SHARE", [[a.pk for a in accounts]])
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
            lifecycle_advance(tenant=configured_tenant, account_ids=[a.pk for a in accounts])
    finally:
        ingest.rollback()
        ingest.close()
    assert AccountStage.objects.for_tenant(configured_tenant).filter(account__in=accounts).count() == 3
