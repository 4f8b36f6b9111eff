"""The recompute pipeline, from an ingested event to the account's stage and health."""

import datetime as dt
import threading
from functools import partial

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from csplatform import pipeline
from csplatform.customers.models import Account
from csplatform.customers.services import account_mark_dirty
from csplatform.models import PassStatus, PipelinePass
from csplatform.rules.models import AccountMetrics
from csplatform.sql import analyze_where_tenant_unseen
from csplatform.tenancy.rls import tenant_context
from health.defaults import scorecards_apply_defaults
from health.models import HealthScore
from lifecycle.models import AccountStage, StageTransition
from lifecycle.services import lifecycle_advance, stages_apply_template

from .factories import AccountFactory, ContactFactory

pytestmark = pytest.mark.django_db


def configure(tenant):
    stages_apply_template(tenant=tenant, template_key="onboarding_to_renewal", actor=None)
    scorecards_apply_defaults(tenant=tenant)
    return tenant


@pytest.fixture
def configured_tenant(tenant):
    return configure(tenant)


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

    def recompute_while_a_change_arrives(*, tenant, **options):
        totals = real_recompute(tenant=tenant, **options)
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
postgresql_planner = pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has no planner settings")
postgresql_statistics = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite keeps no statistics per value"
)


def planner_settings():
    """`(parallel workers per gather, random page cost)` of the connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('max_parallel_workers_per_gather'), current_setting('random_page_cost')")
        return cursor.fetchone()


def recording_planner_settings(seen, *, fail=False):
    """`recompute_accounts` that notes the settings its chunk's queries are planned with, and may fail."""
    real_recompute = pipeline.recompute_accounts

    def recompute(*, tenant, account_ids):
        seen.append(planner_settings())
        if fail:
            raise RuntimeError("chunk failed")
        return real_recompute(tenant=tenant, account_ids=account_ids)

    return recompute


def set_planner_settings():
    with connection.cursor() as cursor:
        cursor.execute("SET max_parallel_workers_per_gather = 3")
        cursor.execute("SET random_page_cost = 4")


@postgresql_planner
def test_a_pass_plans_its_chunks_as_reads_by_key_and_gives_the_connection_its_settings_back(
    configured_tenant, monkeypatch
):
    AccountFactory.create_batch(7, tenant=configured_tenant)
    pipeline.mark_all_dirty(tenant=configured_tenant)
    set_planner_settings()
    seen = []
    monkeypatch.setattr(pipeline, "recompute_accounts", recording_planner_settings(seen))

    pipeline.recompute_dirty(tenant=configured_tenant, chunk_size=3, threads=1)

    assert seen == [("0", "1.1")] * 3
    assert planner_settings() == ("3", "4")


@postgresql_planner
def test_a_pass_whose_chunk_failed_gives_the_connection_its_planner_settings_back(configured_tenant, monkeypatch):
    AccountFactory.create_batch(2, tenant=configured_tenant)
    pipeline.mark_all_dirty(tenant=configured_tenant)
    set_planner_settings()
    seen = []
    monkeypatch.setattr(pipeline, "recompute_accounts", recording_planner_settings(seen, fail=True))

    with pytest.raises(RuntimeError, match="chunk failed"):
        pipeline.recompute_dirty(tenant=configured_tenant, threads=1)

    assert seen == [("0", "1.1")]
    assert planner_settings() == ("3", "4")


def accounts_with_a_contact(tenant, count):
    for account in AccountFactory.create_batch(count, tenant=tenant):
        ContactFactory(tenant=tenant, account=account)


@postgresql_statistics
def test_a_pass_of_several_chunks_has_the_tables_it_fills_analysed_when_their_statistics_predate_the_tenant(
    configured_tenant, other_tenant
):
    accounts_with_a_contact(configure(other_tenant), 3)
    pipeline.mark_all_dirty(tenant=other_tenant)
    pipeline.recompute_dirty(tenant=other_tenant, threads=1)
    with connection.cursor() as cursor:
        for model in pipeline.FILLED_BY_A_PASS:
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    accounts_with_a_contact(configured_tenant, 7)
    pipeline.mark_all_dirty(tenant=configured_tenant)

    pipeline.recompute_dirty(tenant=configured_tenant, chunk_size=3, threads=1)

    assert analyze_where_tenant_unseen(configured_tenant.pk, pipeline.FILLED_BY_A_PASS) == []


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


class Helper(threading.Thread):
    """Another worker process taking part in a pass: `pipeline.pass_help` on a connection of its own."""

    def __init__(self, tenant, pass_id):
        super().__init__(name="helper")
        self.tenant, self.pass_id, self.error = tenant, pass_id, None

    def run(self):
        try:
            with tenant_context(self.tenant):
                pipeline.pass_help(tenant=self.tenant, pass_id=self.pass_id)
        except BaseException as error:
            self.error = error
        finally:
            connection.close()


class HelpersAsked:
    """An `ask_for_helpers` that starts one Helper per pass, as the recompute task's queued helper would."""

    def __init__(self, tenant):
        self.tenant, self.helpers = tenant, []

    def __call__(self, pass_id):
        helper = Helper(self.tenant, pass_id)
        self.helpers.append(helper)
        helper.start()

    def join(self):
        for helper in self.helpers:
            helper.join(timeout=30)


def recorded_chunks(monkeypatch, before_each=None):
    """Record which thread took which accounts; `before_each(thread name, ids)` runs before each recompute."""
    chunks, real_recompute = [], pipeline.recompute_accounts

    def recompute_recorded(*, tenant, account_ids):
        chunks.append((threading.current_thread().name, list(account_ids)))
        if before_each is not None:
            before_each(threading.current_thread().name, account_ids)
        return real_recompute(tenant=tenant, account_ids=account_ids)

    monkeypatch.setattr(pipeline, "recompute_accounts", recompute_recorded)
    return chunks


@threads_need_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_helper_process_takes_chunks_of_the_same_pass_and_each_account_is_recomputed_once(
    configured_tenant, monkeypatch
):
    accounts = AccountFactory.create_batch(12, tenant=configured_tenant)
    both_busy = threading.Barrier(2)
    first_chunk_of = set()

    def wait_for_the_other_on_first_chunk(thread_name, ids):
        if thread_name not in first_chunk_of:
            first_chunk_of.add(thread_name)
            both_busy.wait(timeout=10)

    chunks = recorded_chunks(monkeypatch, wait_for_the_other_on_first_chunk)
    pipeline.mark_all_dirty(tenant=configured_tenant)
    helpers = HelpersAsked(configured_tenant)

    totals = pipeline.recompute_dirty(tenant=configured_tenant, chunk_size=3, threads=1, ask_for_helpers=helpers)
    helpers.join()

    recomputed = [account_id for _, ids in chunks for account_id in ids]
    assert sorted(recomputed) == sorted(account.pk for account in accounts)
    assert {"helper", "MainThread"} <= {thread_name for thread_name, _ in chunks}
    assert totals == {"accounts": 12, "moved": 12}
    assert HealthScore.objects.for_tenant(configured_tenant).count() == len(accounts)
    assert not Account.objects.for_tenant(configured_tenant).dirty().exists()
    (ended,) = PipelinePass.objects.for_tenant(configured_tenant)
    assert (ended.status, ended.accounts, ended.chunks_done) == (PassStatus.COMPLETE, 12, 4)


@threads_need_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_chunk_failing_in_a_helper_fails_the_pass_and_keeps_its_accounts_marked(configured_tenant, monkeypatch):
    AccountFactory.create_batch(12, tenant=configured_tenant)
    helper_started = threading.Event()

    def fail_in_the_helper(thread_name, ids):
        if thread_name == "helper":
            helper_started.set()
            raise RuntimeError("chunk failed in the helper")
        helper_started.wait(timeout=10)

    chunks = recorded_chunks(monkeypatch, fail_in_the_helper)
    pipeline.mark_all_dirty(tenant=configured_tenant)
    helpers = HelpersAsked(configured_tenant)

    with pytest.raises(pipeline.PassFailed):
        pipeline.recompute_dirty(tenant=configured_tenant, chunk_size=3, threads=1, ask_for_helpers=helpers)
    helpers.join()

    assert str(helpers.helpers[0].error) == "chunk failed in the helper"
    still_marked = set(Account.objects.for_tenant(configured_tenant).dirty().values_list("pk", flat=True))
    recomputed = {account_id for thread_name, ids in chunks if thread_name == "MainThread" for account_id in ids}
    assert still_marked and not still_marked & recomputed


@threads_need_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_helper_that_stops_reporting_holds_the_pass_no_longer_than_the_stall_limit(configured_tenant, monkeypatch):
    """What a helper killed mid-chunk looks like to the pass: a chunk taken and never done."""
    AccountFactory.create_batch(6, tenant=configured_tenant)
    monkeypatch.setattr(pipeline, "HELPER_STALL_SECONDS", 0.5)
    released = threading.Event()

    def hang_in_the_helper(thread_name, ids):
        if thread_name == "helper":
            released.wait(timeout=30)

    chunks = recorded_chunks(monkeypatch, hang_in_the_helper)
    pipeline.mark_all_dirty(tenant=configured_tenant)
    helpers = HelpersAsked(configured_tenant)
    try:
        pipeline.recompute_dirty(tenant=configured_tenant, chunk_size=3, threads=1, ask_for_helpers=helpers)
        hung = {account_id for thread_name, ids in chunks if thread_name == "helper" for account_id in ids}
        assert hung == set(Account.objects.for_tenant(configured_tenant).dirty().values_list("pk", flat=True))
    finally:
        released.set()
        helpers.join()


def test_a_helper_arriving_after_its_pass_ended_recomputes_nothing(configured_tenant, monkeypatch):
    AccountFactory.create_batch(2, tenant=configured_tenant)
    pipeline.mark_all_dirty(tenant=configured_tenant)
    chunks = recorded_chunks(monkeypatch)

    pipeline.pass_help(tenant=configured_tenant, pass_id=12345)

    assert chunks == []
    assert Account.objects.for_tenant(configured_tenant).dirty().count() == 2


def test_the_recompute_task_asks_the_configured_number_of_helpers_to_join_a_pass_of_several_chunks(
    configured_tenant, settings, monkeypatch
):
    from csplatform.tasks import recompute_dirty_task, recompute_pass_help_task

    settings.CSP_PIPELINE_HELPERS = 2
    AccountFactory.create_batch(4, tenant=configured_tenant)
    pipeline.mark_all_dirty(tenant=configured_tenant)
    monkeypatch.setattr(pipeline, "recompute_dirty", partial(pipeline.recompute_dirty, chunk_size=3, threads=1))
    asked = []
    monkeypatch.setattr(recompute_pass_help_task, "apply_async", lambda args, **options: asked.append((args, options)))

    recompute_dirty_task.apply(args=[configured_tenant.pk]).get()

    assert len(asked) == 2
    assert {args[0] for args, _ in asked} == {configured_tenant.pk}
    assert len({args[1] for args, _ in asked}) == 1
    assert not Account.objects.for_tenant(configured_tenant).dirty().exists()


def test_a_pass_whose_helpers_cannot_be_asked_for_is_done_by_its_own_worker(configured_tenant, settings, monkeypatch):
    from csplatform.tasks import recompute_dirty_task, recompute_pass_help_task

    settings.CSP_PIPELINE_HELPERS = 1
    accounts = AccountFactory.create_batch(4, tenant=configured_tenant)
    pipeline.mark_all_dirty(tenant=configured_tenant)
    monkeypatch.setattr(pipeline, "recompute_dirty", partial(pipeline.recompute_dirty, chunk_size=3, threads=1))

    def broker_down(*args, **options):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(recompute_pass_help_task, "apply_async", broker_down)

    passes = recompute_dirty_task.apply(args=[configured_tenant.pk]).get()

    assert passes == [{"accounts": len(accounts), "moved": len(accounts)}]
    assert not Account.objects.for_tenant(configured_tenant).dirty().exists()
