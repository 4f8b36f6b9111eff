"""The step runner: claim due StepRuns, execute each, schedule the next.

Steps are rows with a due time. `steps_run_due` claims a batch with
SELECT ... FOR UPDATE SKIP LOCKED (status -> running), then executes it
tenant by tenant: one transaction prepares all of a tenant's steps, their
emails go out together, one transaction finishes them. Every side effect
carries a key with a unique constraint, so a step executed twice (its
worker died, the claim was reclaimed) creates nothing twice and sends no
email twice (mail.py says how, and which window of a kill is left open).

The claims span tenants, so they run with row-level security bypassed;
each step then runs inside its own tenant's context.
"""

import datetime as dt
import logging

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from csplatform.sql import parameters
from csplatform.tenancy.models import Tenant
from csplatform.tenancy.rls import dangerously_bypass_rls, tenant_context

from .mail import Outbox, TransientSendError
from .models import EmailStatus, OutboundEmail, Playbook, Run, RunStatus, Step, StepRun, StepRunStatus
from .services import playbook_steps, run_end, runs_end
from .steps import EXECUTORS, BatchFacts, PermanentStepError, StepContext, faces_customer

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8


def stale_after():
    return dt.timedelta(seconds=getattr(settings, "CSP_PLAYBOOK_STALE_SECONDS", 600))


def retry_delay(attempts):
    """Exponential backoff for transient failures: 1, 2, 4 ... minutes, at most an hour."""
    return dt.timedelta(minutes=min(2 ** max(attempts - 1, 0), 60))


def step_runs_reclaim(*, now):
    """Claims older than the stale limit belong to a worker that died: due again now."""
    with dangerously_bypass_rls():
        return (
            StepRun.objects.dangerously_all_tenants()
            .filter(status=StepRunStatus.RUNNING, claimed_at__lt=now - stale_after())
            .update(status=StepRunStatus.PENDING, claimed_at=None, due_at=now)
        )


def step_runs_claim(*, now, limit):
    """Claim up to `limit` due steps of any tenant; returns their ids."""
    with transaction.atomic(), dangerously_bypass_rls():
        # A claim lost to a database crash leaves its steps due: they run again, harmlessly.
        _commit_without_waiting_for_disk()
        ids = list(
            StepRun.objects.dangerously_all_tenants()
            .select_for_update(skip_locked=True)
            .filter(status=StepRunStatus.PENDING, due_at__lte=now)
            .order_by("due_at", "id")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            StepRun.objects.dangerously_all_tenants().filter(pk__in=ids, status=StepRunStatus.PENDING).update(
                status=StepRunStatus.RUNNING, claimed_at=now
            )
    return ids


def steps_run_due(*, now=None, limit=100):
    """Reclaim dead claims, claim due steps and execute them, tenant by tenant in its context.

    Returns how many were executed. The batch shares its mail connections.
    """
    now = now or timezone.now()
    step_runs_reclaim(now=now)
    ids = step_runs_claim(now=now, limit=limit)
    by_tenant = {}
    for step_run in _load(ids):
        by_tenant.setdefault(step_run.tenant_id, []).append(step_run)
    with Outbox() as outbox:
        for tenant_id, step_runs in by_tenant.items():
            with tenant_context(tenant_id):
                _execute(step_runs, now, outbox)
    return len(ids)


def _load(step_run_ids):
    """The claimed StepRuns with their steps, in claim order; preparing them reads their runs, locked.

    A batch's steps share a few steps and tenants: each is read once, not once per StepRun.
    """
    with dangerously_bypass_rls():
        claimed = StepRun.objects.dangerously_all_tenants().filter(pk__in=step_run_ids, status=StepRunStatus.RUNNING)
        rows = claimed.in_bulk()
        steps = Step.objects.dangerously_all_tenants().in_bulk({row.step_id for row in rows.values()})
        tenants = Tenant.objects.in_bulk({row.tenant_id for row in rows.values()})
    for row in rows.values():
        row.step, row.tenant = steps[row.step_id], tenants[row.tenant_id]
    return [rows[pk] for pk in step_run_ids if pk in rows]


def step_execute(*, step_run_id, now=None):
    """Execute one claimed step (see _execute); returns its new status, or None if it was not claimed.

    A given `now` is the step's clock throughout, as when replaying the past:
    its finish, the next step's due time and its emails' sent time read it.
    """
    claimed = _load([step_run_id])
    if not claimed:
        return None
    with tenant_context(claimed[0].tenant_id), Outbox() as outbox:
        return _execute(claimed, now or timezone.now(), outbox, replaying=now is not None)[step_run_id]


def _execute(step_runs, now, outbox, replaying=False):
    """Execute claimed steps of one tenant; returns {step run id: new status, or None if settled otherwise}.

    1. In one transaction: per step, stop if the run ended, exit the run if
       the account left the trigger stage or the exit criteria hold, wait for
       business hours if the step faces the customer, else run the step's
       executor, which records its side effects (emails queued, tasks) under
       idempotency keys. A permanent error fails its step and run alone.
    2. Send the steps' queued emails, each marked sent before its end (mail.py).
    3. In one transaction: finish the steps and schedule the next ones. A
       transient send failure puts its step back with a later due time.
    `replaying` keeps `now` as the clock of steps 2 and 3 too.
    """
    statuses = _prepare_all(step_runs, now)
    prepared = [step_run for step_run in step_runs if step_run.pk not in statuses]
    if not prepared:
        return statuses
    emails = list(
        OutboundEmail.objects.for_tenant(step_runs[0].tenant)
        .filter(step_run__in=[step_run.pk for step_run in prepared])
        .filter(status__in=(EmailStatus.QUEUED, EmailStatus.PENDING_REVIEW))
        .order_by("pk")
    )
    sent = outbox.send([email for email in emails if email.status == EmailStatus.QUEUED], now if replaying else None)
    # After sending, a live batch reads the clock again; a replay stays at its moment.
    clock = now if replaying else timezone.now()
    transient, waiting = {}, set()
    for email in emails:
        if isinstance(sent.get(email.pk), TransientSendError):
            transient.setdefault(email.step_run_id, sent[email.pk])
        elif email.status == EmailStatus.PENDING_REVIEW:
            waiting.add(email.step_run_id)
    for step_run in prepared:
        if step_run.pk in transient:
            statuses[step_run.pk] = _retry_later(step_run, str(transient[step_run.pk]), clock)
    finished = [step_run for step_run in prepared if step_run.pk not in transient]
    with transaction.atomic():
        _commit_without_waiting_for_disk()
        done = [step_run for step_run in finished if step_run.pk not in waiting]
        for step_run in finished:
            if step_run.pk in waiting:
                StepRun.objects.for_tenant(step_run.tenant).filter(pk=step_run.pk, status=StepRunStatus.RUNNING).update(
                    status=StepRunStatus.WAITING_REVIEW, outcome=step_run.outcome
                )
                statuses[step_run.pk] = StepRunStatus.WAITING_REVIEW
        _finish_done(done, clock)
        _schedule_next(done, clock)
        statuses.update((step_run.pk, StepRunStatus.DONE) for step_run in done)
    return statuses


def _commit_without_waiting_for_disk():
    """Let the current transaction's commit return before it is on disk (PostgreSQL).

    A database crash can lose such a commit, which only makes the steps run
    again: their idempotency keys make that harmless. The sent mark of an
    email, which must survive, commits synchronously and so makes every
    earlier commit durable with it.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _prepare_all(step_runs, now):
    """Step 1 of _execute; returns {step run id: status} of the steps settled otherwise, the rest carry `outcome`.

    Tried first without a savepoint per step; if a step fails for good, its
    work must roll back alone, so the batch is prepared again with one.
    """
    try:
        return _prepare_in_one_transaction(step_runs, now, isolated=False)
    except PermanentStepError:
        return _prepare_in_one_transaction(step_runs, now, isolated=True)


def _prepare_in_one_transaction(step_runs, now, *, isolated):
    tenant = step_runs[0].tenant
    settled = {}
    with transaction.atomic():
        _commit_without_waiting_for_disk()
        runs = (
            Run.objects.for_tenant(tenant)
            .select_for_update(of=("self",))
            .select_related("account__owner")
            .filter(pk__in={step_run.run_id for step_run in step_runs})
            .order_by("pk")
            .in_bulk()
        )
        playbooks = Playbook.objects.for_tenant(tenant).in_bulk({run.playbook_id for run in runs.values()})
        for step_run in step_runs:
            step_run.run = runs[step_run.run_id]
            step_run.run.playbook = playbooks[step_run.run.playbook_id]
        facts = BatchFacts(tenant=tenant, step_runs=step_runs)
        for step_run in step_runs:
            try:
                with transaction.atomic(savepoint=isolated):
                    step_run.outcome = _prepare(step_run, now, facts)
            except PermanentStepError as exc:
                if not isolated:
                    raise
                facts.emails_forget(step_run)
                _finish(step_run, StepRunStatus.FAILED, error=str(exc), now=now)
                run_end(tenant=tenant, run=step_run.run, status=RunStatus.FAILED, reason=str(exc), now=now)
                settled[step_run.pk] = StepRunStatus.FAILED
                continue
            if step_run.outcome is None:
                settled[step_run.pk] = None
        facts.emails_insert()
    for step_run in step_runs:
        if step_run.pk not in settled and "emails" in step_run.outcome:
            step_run.outcome["emails"] = [email.pk for email in step_run.outcome["emails"]]
    return settled


def _prepare(step_run, now, facts):
    """One step of _prepare_all; returns the outcome, or None when the step is settled otherwise."""
    tenant, run = step_run.tenant, step_run.run
    if run.status != RunStatus.ACTIVE:
        _finish(step_run, StepRunStatus.SKIPPED, error=f"The run is {run.status}.", now=now)
        return None
    context = StepContext(step_run=step_run, now=now, facts=facts)
    reason = context.exit_reason()
    if reason:
        _finish(step_run, StepRunStatus.SKIPPED, error=reason, now=now)
        run_end(tenant=tenant, run=run, status=RunStatus.EXITED, reason=reason, now=now)
        return None
    if faces_customer(step_run.step):
        later = context.business_time()
        if later > now:
            StepRun.objects.for_tenant(tenant).filter(pk=step_run.pk).update(
                status=StepRunStatus.PENDING, due_at=later, claimed_at=None
            )
            return None
    outcome = EXECUTORS[step_run.step.kind](context)
    # Whatever the step's kind, its outcome names whom it left out and why.
    unsubscribed = context.unsubscribed()
    if unsubscribed:
        outcome["unsubscribed"] = [contact.email for contact in unsubscribed]
    return outcome


def _finish(step_run, status, *, outcome=None, error="", now):
    StepRun.objects.for_tenant(step_run.tenant).filter(pk=step_run.pk, status=StepRunStatus.RUNNING).update(
        status=status, outcome=outcome or {}, error=error[:2000], finished_at=now
    )


def _finish_done(step_runs, now):
    """Mark the steps done with their outcomes, in one statement.

    Written as SQL: the ORM's Case(When(...)) costs more Python per step than sending its email.
    """
    if not step_runs:
        return
    outcome = StepRun._meta.get_field("outcome")
    ids = [step_run.pk for step_run in step_runs]
    cases = " ".join(["WHEN %s THEN %s"] * len(ids))
    outcomes = [
        param for step_run in step_runs for param in (step_run.pk, outcome.get_db_prep_save(step_run.outcome, connection))
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {connection.ops.quote_name(StepRun._meta.db_table)} "
            f"SET status = %s, error = '', finished_at = %s, outcome = CASE id {cases} END "
            f"WHERE tenant_id = %s AND status = %s AND id IN {parameters(len(ids))}",
            [
                StepRunStatus.DONE,
                connection.ops.adapt_datetimefield_value(now),
                *outcomes,
                step_runs[0].tenant_id,
                StepRunStatus.RUNNING,
                *ids,
            ],
        )


def _schedule_next(step_runs, now):
    """Each run's next StepRun (by position, or the usage check's goto), else the run completes.

    The next StepRuns are inserted together; one that exists already (the
    step ran before) is kept, by the unique (run, sequence).
    """
    if not step_runs:
        return
    tenant = step_runs[0].tenant
    steps_of, following, ending = {}, [], {}
    for step_run in step_runs:
        run, outcome = step_run.run, step_run.outcome
        if outcome.get("end"):
            ending.setdefault(outcome.get("reason", "Ended by a step."), []).append(run)
            continue
        if run.playbook_id not in steps_of:
            steps_of[run.playbook_id] = playbook_steps(tenant, run.playbook)
        position = outcome["goto"] if "goto" in outcome else step_run.step.position + 1
        step = next((step for step in steps_of[run.playbook_id] if step.position == position), None)
        if step is None:
            ending.setdefault("All steps done.", []).append(run)
            continue
        following.append(
            StepRun(
                tenant=tenant,
                run=run,
                step=step,
                sequence=step_run.sequence + 1,
                due_at=now + dt.timedelta(minutes=step.delay_minutes),
            )
        )
    StepRun.objects.for_tenant(tenant).bulk_create(following, ignore_conflicts=True)
    for reason, runs in ending.items():
        runs_end(tenant=tenant, runs=runs, status=RunStatus.COMPLETED, reason=reason, now=now)


def _retry_later(step_run, error, now):
    attempts = step_run.attempts + 1
    with transaction.atomic():
        if attempts >= MAX_ATTEMPTS:
            reason = f"Gave up after {attempts} attempts: {error}"
            _finish(step_run, StepRunStatus.FAILED, error=reason, now=now)
            run_end(tenant=step_run.tenant, run=step_run.run, status=RunStatus.FAILED, reason=reason, now=now)
            return StepRunStatus.FAILED
        StepRun.objects.for_tenant(step_run.tenant).filter(pk=step_run.pk, status=StepRunStatus.RUNNING).update(
            status=StepRunStatus.PENDING,
            attempts=attempts,
            due_at=now + retry_delay(attempts),
            claimed_at=None,
            error=error[:2000],
        )
    logger.warning("Step run %s will retry: %s", step_run.pk, error)
    return StepRunStatus.PENDING
