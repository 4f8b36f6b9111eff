"""The step runner: claim due StepRuns, execute each, schedule the next.

Steps are rows with a due time. `steps_run_due` claims a batch with
SELECT ... FOR UPDATE SKIP LOCKED (status -> running), then executes each
step in its own transactions. Every side effect carries a key with a unique
constraint, so a step executed twice (its worker died, the claim was
reclaimed) creates nothing twice and sends no email twice (mail.py says
how, and which window of a kill is left open).

The claims span tenants, so they run with row-level security bypassed;
each step then runs inside its own tenant's context.
"""

import datetime as dt
import logging

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from csplatform.tenancy.rls import dangerously_bypass_rls, tenant_context

from .mail import Outbox, TransientSendError
from .models import EmailStatus, OutboundEmail, Run, RunStatus, StepRun, StepRunStatus
from .services import playbook_steps, run_end
from .steps import EXECUTORS, PermanentStepError, StepContext, faces_customer

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
    """Reclaim dead claims, claim due steps and execute them, each in its tenant's context.

    Returns how many were executed. The batch shares one mail connection.
    """
    now = now or timezone.now()
    step_runs_reclaim(now=now)
    ids = step_runs_claim(now=now, limit=limit)
    with Outbox() as outbox:
        for step_run in _load(ids):
            with tenant_context(step_run.tenant_id):
                _execute(step_run, now, outbox)
    return len(ids)


def _load(step_run_ids):
    """The claimed StepRuns with what executing them reads, in claim order."""
    with dangerously_bypass_rls():
        rows = (
            StepRun.objects.dangerously_all_tenants()
            .select_related("run__playbook", "run__account__owner", "step", "tenant")
            .filter(pk__in=step_run_ids, status=StepRunStatus.RUNNING)
            .in_bulk()
        )
    return [rows[pk] for pk in step_run_ids if pk in rows]


def _finish(step_run, status, *, outcome=None, error="", now):
    StepRun.objects.for_tenant(step_run.tenant).filter(pk=step_run.pk, status=StepRunStatus.RUNNING).update(
        status=status, outcome=outcome or {}, error=error[:2000], finished_at=now
    )


def _schedule_next(step_run, outcome, now):
    """The run's next StepRun (by position, or the usage check's goto), else the run completes."""
    tenant, run = step_run.tenant, step_run.run
    if outcome.get("end"):
        run_end(
            tenant=tenant,
            run=run,
            status=RunStatus.COMPLETED,
            reason=outcome.get("reason", "Ended by a step."),
            now=now,
        )
        return
    steps = playbook_steps(tenant, run.playbook)
    position = outcome["goto"] if "goto" in outcome else step_run.step.position + 1
    following = next((step for step in steps if step.position == position), None)
    if following is None:
        run_end(tenant=tenant, run=run, status=RunStatus.COMPLETED, reason="All steps done.", now=now)
        return
    StepRun.objects.for_tenant(tenant).get_or_create(
        run=run,
        sequence=step_run.sequence + 1,
        defaults={"tenant": tenant, "step": following, "due_at": now + dt.timedelta(minutes=following.delay_minutes)},
    )


def step_execute(*, step_run_id, now=None):
    """Execute one claimed step (see _execute); returns its new status, or None if it was not claimed.

    A given `now` is the step's clock throughout, as when replaying the past:
    its finish, the next step's due time and its emails' sent time read it.
    """
    clock = timezone.now if now is None else (lambda: now)
    claimed = _load([step_run_id])
    if not claimed:
        return None
    (step_run,) = claimed
    with tenant_context(step_run.tenant_id), Outbox() as outbox:
        return _execute(step_run, clock(), outbox, clock)


def _execute(step_run, now, outbox, clock=timezone.now):
    """Execute one claimed step.

    1. In one transaction: stop if the run ended, exit the run if the account
       left the trigger stage or the exit criteria hold, wait for business
       hours if the step faces the customer, else run the step's executor,
       which records its side effects (emails queued, tasks) under
       idempotency keys.
    2. Send the step's queued emails, each marked sent as it goes.
    3. Finish the step and schedule the next one. A transient failure puts
       the step back with a later due time; a permanent one fails the run.
    """
    try:
        with transaction.atomic():
            _commit_without_waiting_for_disk()
            outcome = _prepare(step_run, now)
            if outcome is None:
                return None
        waiting = _send_emails(step_run, outbox, clock)
        with transaction.atomic():
            _commit_without_waiting_for_disk()
            if waiting:
                StepRun.objects.for_tenant(step_run.tenant).filter(pk=step_run.pk, status=StepRunStatus.RUNNING).update(
                    status=StepRunStatus.WAITING_REVIEW, outcome=outcome
                )
                return StepRunStatus.WAITING_REVIEW
            _finish(step_run, StepRunStatus.DONE, outcome=outcome, now=clock())
            _schedule_next(step_run, outcome, clock())
        return StepRunStatus.DONE
    except TransientSendError as exc:
        return _retry_later(step_run, str(exc))
    except PermanentStepError as exc:
        with transaction.atomic():
            _finish(step_run, StepRunStatus.FAILED, error=str(exc), now=now)
            run_end(tenant=step_run.tenant, run=step_run.run, status=RunStatus.FAILED, reason=str(exc), now=now)
        return StepRunStatus.FAILED


def _commit_without_waiting_for_disk():
    """Let the current transaction's commit return before it is on disk (PostgreSQL).

    A database crash can lose such a commit, which only makes the step run
    again: its idempotency keys make that harmless. The sent mark of an
    email, which must survive, commits synchronously and so makes every
    earlier commit durable with it.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _prepare(step_run, now):
    """Step 1 of _execute; returns the outcome, or None when the step is settled otherwise."""
    tenant, run = step_run.tenant, step_run.run
    run = (
        Run.objects.for_tenant(tenant)
        .select_for_update(of=("self",))
        .select_related("playbook", "account__owner")
        .get(pk=run.pk)
    )
    step_run.run = run
    if run.status != RunStatus.ACTIVE:
        _finish(step_run, StepRunStatus.SKIPPED, error=f"The run is {run.status}.", now=now)
        return None
    context = StepContext(step_run=step_run, now=now)
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
    return EXECUTORS[step_run.step.kind](context)


def _send_emails(step_run, outbox, clock):
    """Send the step's queued emails; True while some still wait for review."""
    emails = list(
        OutboundEmail.objects.for_tenant(step_run.tenant)
        .filter(step_run=step_run, status__in=(EmailStatus.QUEUED, EmailStatus.PENDING_REVIEW))
        .order_by("pk")
    )
    for email in emails:
        if email.status == EmailStatus.QUEUED:
            outbox.deliver(email, clock())
    return any(email.status == EmailStatus.PENDING_REVIEW for email in emails)


def _retry_later(step_run, error):
    attempts = step_run.attempts + 1
    now = timezone.now()
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
