"""The step runner: claim due StepRuns, execute each, schedule the next.

Steps are rows with a due time. `steps_run_due` claims a batch with
SELECT ... FOR UPDATE SKIP LOCKED (status -> running), then executes each
step in its own transactions. Every side effect carries a key with a unique
constraint, so a step executed twice (its worker died, the claim was
reclaimed) creates nothing twice and sends no email twice.
"""

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .mail import TransientSendError, email_deliver
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
    return (
        StepRun.objects.dangerously_all_tenants()
        .filter(status=StepRunStatus.RUNNING, claimed_at__lt=now - stale_after())
        .update(status=StepRunStatus.PENDING, claimed_at=None, due_at=now)
    )


def step_runs_claim(*, now, limit):
    """Claim up to `limit` due steps of any tenant; returns their ids."""
    with transaction.atomic():
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
    """Reclaim dead claims, claim due steps and execute them; returns how many were executed."""
    now = now or timezone.now()
    step_runs_reclaim(now=now)
    ids = step_runs_claim(now=now, limit=limit)
    for pk in ids:
        step_execute(step_run_id=pk, now=now)
    return len(ids)


def _load(step_run_id):
    return (
        StepRun.objects.dangerously_all_tenants()
        .select_related("run__playbook", "run__account__owner", "step", "tenant")
        .filter(pk=step_run_id, status=StepRunStatus.RUNNING)
        .first()
    )


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
    now = now or timezone.now()
    step_run = _load(step_run_id)
    if step_run is None:
        return None
    try:
        with transaction.atomic():
            outcome = _prepare(step_run, now)
            if outcome is None:
                return None
        waiting = _send_emails(step_run)
        with transaction.atomic():
            if waiting:
                StepRun.objects.for_tenant(step_run.tenant).filter(pk=step_run.pk, status=StepRunStatus.RUNNING).update(
                    status=StepRunStatus.WAITING_REVIEW, outcome=outcome
                )
                return StepRunStatus.WAITING_REVIEW
            _finish(step_run, StepRunStatus.DONE, outcome=outcome, now=timezone.now())
            _schedule_next(step_run, outcome, timezone.now())
        return StepRunStatus.DONE
    except TransientSendError as exc:
        return _retry_later(step_run, str(exc))
    except PermanentStepError as exc:
        with transaction.atomic():
            _finish(step_run, StepRunStatus.FAILED, error=str(exc), now=now)
            run_end(tenant=step_run.tenant, run=step_run.run, status=RunStatus.FAILED, reason=str(exc), now=now)
        return StepRunStatus.FAILED


def _prepare(step_run, now):
    """Step 1 of step_execute; returns the outcome, or None when the step is settled otherwise."""
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


def _send_emails(step_run):
    """Send the step's queued emails; True while some still wait for review."""
    emails = OutboundEmail.objects.for_tenant(step_run.tenant).filter(step_run=step_run)
    for email in emails.filter(status=EmailStatus.QUEUED).order_by("pk"):
        email_deliver(email=email)
    return emails.filter(status=EmailStatus.PENDING_REVIEW).exists()


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
