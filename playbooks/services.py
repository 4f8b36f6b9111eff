import datetime as dt
import logging

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, Max, OuterRef, Q, Subquery
from django.utils import timezone

from alerts.notifications import member_tell
from alerts.webhooks import account_payload, webhooks_emit
from csplatform.customers.models import Account, UsageEvent
from csplatform.sql import OneOf
from csplatform.tenancy.models import Membership
from csplatform.tenancy.services import audit_record
from csplatform.tenancy.timezones import tenant_zone

from .models import (
    EmailStatus,
    EnrollmentPolicy,
    OutboundEmail,
    Playbook,
    Run,
    RunStatus,
    Step,
    StepRun,
    StepRunStatus,
    Task,
    TriggerType,
)
from .validation import Problems, criteria_text, steps_validate, trigger_validate

logger = logging.getLogger(__name__)

PLAYBOOK_FIELDS = (
    "key",
    "name",
    "description",
    "trigger_type",
    "trigger_config",
    "audience_text",
    "exit_criteria_text",
    "enrollment_policy",
    "again_after_days",
)


def playbook_snapshot(playbook):
    data = {name: getattr(playbook, name) for name in PLAYBOOK_FIELDS}
    data["enabled"] = playbook.enabled
    data["steps"] = [
        {"kind": step.kind, "delay_minutes": step.delay_minutes, "config": step.config}
        for step in playbook_steps(playbook.tenant_id, playbook)
    ]
    return data


def _apply_definition(tenant, playbook, data, steps):
    """Validate every part of the definition, all problems at once, then set the playbook's fields."""
    problems = Problems()
    for name in PLAYBOOK_FIELDS:
        if name in data:
            setattr(playbook, name, data[name])
    playbook.trigger_config = trigger_validate(problems, playbook.trigger_type, playbook.trigger_config, tenant=tenant)
    playbook.audience, playbook.audience_text = criteria_text(
        problems, "audience_text", playbook.audience_text, tenant=tenant, subject="contact"
    )
    playbook.exit_criteria, playbook.exit_criteria_text = criteria_text(
        problems, "exit_criteria_text", playbook.exit_criteria_text, tenant=tenant, subject="account"
    )
    if playbook.enrollment_policy not in EnrollmentPolicy.values:
        problems.add("enrollment_policy", f"Give one of {', '.join(EnrollmentPolicy.values)}.")
    if playbook.enrollment_policy == EnrollmentPolicy.AGAIN_AFTER_DAYS and not playbook.again_after_days:
        problems.add("again_after_days", "Say after how many days an account may enter again.")
    cleaned = steps_validate(problems, steps, tenant=tenant) if steps is not None else None
    problems.raise_any()
    return cleaned


def _steps_replace(tenant, playbook, steps):
    """Replace the playbook's steps when they changed.

    Steps that runs have used are retired rather than deleted, so run history
    still reads right; steps of active runs not yet executed move to the new
    step at the same position (or are dropped when there is none).
    """
    existing = playbook_steps(tenant, playbook)
    if [(s.kind, s.delay_minutes, s.config) for s in existing] == [
        (s["kind"], s["delay_minutes"], s["config"]) for s in steps
    ]:
        return
    positions = {step.pk: step.position for step in existing}
    Step.objects.for_tenant(tenant).filter(pk__in=positions).update(active=False)
    new = Step.objects.bulk_create(
        [Step(tenant=tenant, playbook=playbook, position=index, **step) for index, step in enumerate(steps)]
    )
    by_position = {step.position: step for step in new}
    pending = StepRun.objects.for_tenant(tenant).filter(step_id__in=positions, status=StepRunStatus.PENDING)
    for step_run in pending:
        replacement = by_position.get(positions[step_run.step_id])
        if replacement is None:
            run_end(
                tenant=tenant,
                run=step_run.run,
                status=RunStatus.COMPLETED,
                reason="The playbook no longer has this step.",
            )
        else:
            step_run.step = replacement
            step_run.save(update_fields=["step"])
    unused = set(positions) - set(
        StepRun.objects.for_tenant(tenant).filter(step_id__in=positions).values_list("step_id", flat=True)
    )
    Step.objects.for_tenant(tenant).filter(pk__in=unused).delete()


def playbook_steps(tenant, playbook):
    return list(Step.objects.for_tenant(tenant).filter(playbook=playbook, active=True).order_by("position"))


@transaction.atomic
def playbook_create(*, tenant, actor, key, name, trigger_type, steps, **fields):
    if Playbook.objects.for_tenant(tenant).filter(key=key).exists():
        raise ValidationError({"key": f"A playbook with key {key!r} already exists."})
    playbook = Playbook(tenant=tenant, key=key, name=name, trigger_type=trigger_type)
    cleaned = _apply_definition(tenant, playbook, fields, steps)
    enabled = fields.get("enabled", False)
    playbook.enabled, playbook.enabled_at = enabled, timezone.now() if enabled else None
    playbook.save()
    _steps_replace(tenant, playbook, cleaned)
    audit_record(tenant=tenant, actor=actor, action="playbook.created", obj=playbook, after=playbook_snapshot(playbook))
    return playbook


def playbook_draft(*, tenant, playbook=None, steps=None, **fields):
    """A new or changed definition, validated as saving it would be but stored nowhere; returns (playbook, steps).

    What a simulation of a definition not saved runs. `playbook` is the
    saved one to change, whose fields and steps stand where `fields` and
    `steps` say nothing; None starts a new one, which needs steps.
    """
    draft = Playbook(tenant=tenant)
    if playbook is not None:
        for name in PLAYBOOK_FIELDS:
            setattr(draft, name, getattr(playbook, name))
    elif steps is None:
        # Validated as no steps, so that the message comes with every other problem.
        steps = []
    cleaned = _apply_definition(tenant, draft, fields, steps)
    if cleaned is None:
        return draft, playbook_steps(tenant, playbook)
    return draft, [Step(tenant=tenant, playbook=draft, position=index, **step) for index, step in enumerate(cleaned)]


@transaction.atomic
def playbook_update(*, tenant, playbook, actor, steps=None, **changes):
    before = playbook_snapshot(playbook)
    if "key" in changes and changes.pop("key") != playbook.key:
        raise ValidationError({"key": "A playbook's key cannot change."})
    if "enabled" in changes:
        _set_enabled(playbook, changes.pop("enabled"))
    cleaned = _apply_definition(tenant, playbook, changes, steps)
    playbook.save()
    if cleaned is not None:
        _steps_replace(tenant, playbook, cleaned)
    audit_record(
        tenant=tenant,
        actor=actor,
        action="playbook.updated",
        obj=playbook,
        before=before,
        after=playbook_snapshot(playbook),
    )
    return playbook


def _set_enabled(playbook, enabled):
    if enabled and not playbook.enabled:
        playbook.enabled_at = timezone.now()
    playbook.enabled = bool(enabled)


@transaction.atomic
def playbook_set_enabled(*, tenant, playbook, actor, enabled):
    _set_enabled(playbook, enabled)
    playbook.save(update_fields=["enabled", "enabled_at", "updated_at"])
    audit_record(
        tenant=tenant, actor=actor, action="playbook.enabled" if enabled else "playbook.disabled", obj=playbook
    )
    return playbook


@transaction.atomic
def playbook_delete(*, tenant, playbook, actor):
    audit_record(
        tenant=tenant, actor=actor, action="playbook.deleted", obj=playbook, before=playbook_snapshot(playbook)
    )
    playbook.delete()


# Enrolment


def _eligible(tenant, playbook, account_ids, now):
    """The accounts that may start a run now: no active run, and the re-enrolment policy allows it."""
    runs = Run.objects.for_tenant(tenant).filter(playbook=playbook, account_id__in=account_ids)
    if playbook.enrollment_policy == EnrollmentPolicy.ONCE:
        blocked = runs
    else:
        recent = now - dt.timedelta(days=playbook.again_after_days or 0)
        blocked = runs.filter(Q(status=RunStatus.ACTIVE) | Q(started_at__gt=recent))
    return set(account_ids) - set(blocked.values_list("account_id", flat=True))


def runs_start(*, tenant, playbook, account_ids, now=None, reason="", started_by=None, trigger_stage_key=""):
    """Start runs for these accounts where allowed; returns the new runs.

    1. Keep the accounts the policy allows (one query).
    2. Insert the runs; the partial unique constraint drops any that a
       concurrent enrolment already started.
    3. Give each new run its first StepRun, due after the first delay, and
       wake the runner once the transaction commits.
    """
    now = now or timezone.now()
    steps = playbook_steps(tenant, playbook)
    if not steps:
        return []
    with transaction.atomic():
        eligible = _eligible(tenant, playbook, account_ids, now)
        if not eligible:
            return []
        Run.objects.bulk_create(
            [
                Run(
                    tenant=tenant,
                    playbook=playbook,
                    account_id=pk,
                    started_at=now,
                    reason=reason,
                    started_by=started_by,
                    trigger_stage_key=trigger_stage_key,
                )
                for pk in sorted(eligible)
            ],
            ignore_conflicts=True,
        )
        new_runs = list(
            Run.objects.for_tenant(tenant).filter(
                playbook=playbook, account_id__in=eligible, status=RunStatus.ACTIVE, step_runs__isnull=True
            )
        )
        first = steps[0]
        due_at = now + dt.timedelta(minutes=first.delay_minutes)
        StepRun.objects.bulk_create(
            [StepRun(tenant=tenant, run=run, step=first, sequence=0, due_at=due_at) for run in new_runs],
            ignore_conflicts=True,
        )
        if new_runs and due_at <= now:
            transaction.on_commit(_wake_runner)
    return new_runs


def _wake_runner():
    """Run steps due now right away. Best effort: the minute beat task runs them if the broker is down."""
    from .tasks import run_due_task

    try:
        run_due_task.apply_async(expires=300)
    except Exception:
        logger.warning("Could not enqueue the step runner; the minute beat will run the steps", exc_info=True)


def _matching_accounts(tenant, playbook, account_ids, stage_changes, health_changes, segment_changes, now):
    """Account ids whose changes match the playbook's trigger (one query)."""
    config, kind = playbook.trigger_config, playbook.trigger_type
    if kind == TriggerType.STAGE_ENTERED and stage_changes:
        from lifecycle.models import AccountStage

        return set(
            AccountStage.objects.for_tenant(tenant)
            .filter(account_id__in=stage_changes, stage__key=config["stage"])
            .values_list("account_id", flat=True)
        )
    if kind == TriggerType.STAGE_LEFT and stage_changes:
        from lifecycle.models import StageTransition

        return set(
            StageTransition.objects.for_tenant(tenant)
            .filter(account_id__in=stage_changes, from_key=config["stage"], at__gte=now - dt.timedelta(days=1))
            .values_list("account_id", flat=True)
        )
    if kind in (TriggerType.HEALTH_BELOW, TriggerType.HEALTH_ABOVE) and account_ids:
        return _health_crossed(tenant, kind, config["value"], account_ids, now)
    if kind == TriggerType.HEALTH_COLOUR_CHANGED and health_changes:
        from health.models import HealthScore

        return set(
            HealthScore.objects.for_tenant(tenant)
            .filter(account_id__in=health_changes, colour=config["colour"])
            .values_list("account_id", flat=True)
        )
    if kind == TriggerType.SEGMENT_ENTERED and segment_changes:
        from alerts.models import Segment

        segment_id = (
            Segment.objects.for_tenant(tenant).filter(key=config["segment"]).values_list("pk", flat=True).first()
        )
        return {change.account_id for change in segment_changes if change.entered and change.segment_id == segment_id}
    if kind == TriggerType.EVENT_RECEIVED and account_ids:
        latest = dict(
            UsageEvent.objects.for_tenant(tenant)
            .filter(account_id__in=account_ids, event=config["event"], received_at__gte=playbook.enabled_at or now)
            .values("account_id")
            .annotate(last=Max("received_at"))
            .values_list("account_id", "last")
        )
        # An event already answered by a run started after it does not trigger again.
        started = dict(
            Run.objects.for_tenant(tenant)
            .filter(playbook=playbook, account_id__in=latest)
            .values("account_id")
            .annotate(last=Max("started_at"))
            .values_list("account_id", "last")
        )
        return {pk for pk, last in latest.items() if pk not in started or started[pk] < last}
    return set()


def _health_crossed(tenant, kind, value, account_ids, now):
    """Accounts whose health crossed `value` today: today's snapshot beyond it, the one before not.

    Day over day, as the simulation replays it: an account that stays below
    triggers nothing however often it is scored, and a pass run again finds
    the same crossing. An account scored for the first time crossed nothing.
    """
    from health.models import HealthSnapshot

    today = now.astimezone(tenant_zone(tenant)).date()
    beyond, short = ("lt", "gte") if kind == TriggerType.HEALTH_BELOW else ("gt", "lte")
    snapshots = HealthSnapshot.objects.for_tenant(tenant)
    before = snapshots.filter(account=OuterRef("account"), day__lt=today).order_by("-day")
    return set(
        snapshots.filter(Exists(before), account_id__in=account_ids, day=today, **{f"score__{beyond}": value})
        .annotate(before=Subquery(before.values("score")[:1]))
        .filter(Q(before__isnull=True) | Q(**{f"before__{short}": value}))
        .values_list("account_id", flat=True)
    )


def playbooks_enroll(*, tenant, account_ids, stage_changes=(), health_changes=(), segment_changes=(), now=None):
    """Enrol the accounts whose changes match an enabled playbook's trigger; returns {playbook id: runs started}.

    Called by the pipeline after alerts with the chunk's accounts, the ids
    that moved stage, the ids whose health colour changed and the segment
    changes. Date-relative triggers are checked by `playbooks_enroll_dates`.
    Customers in a terminal stage (Churned) have left: only a playbook started
    by entering or leaving a stage starts for them.
    """
    now = now or timezone.now()
    stage_changes, health_changes = list(stage_changes or ()), list(health_changes or ())
    started = {}
    for playbook in (
        Playbook.objects.for_tenant(tenant)
        .filter(enabled=True)
        .exclude(trigger_type__in=(TriggerType.MANUAL, TriggerType.DATE_RELATIVE))
    ):
        matched = _matching_accounts(
            tenant, playbook, list(account_ids), stage_changes, health_changes, segment_changes or (), now
        )
        if matched and playbook.trigger_type not in (TriggerType.STAGE_ENTERED, TriggerType.STAGE_LEFT):
            departed = Account.objects.for_tenant(tenant).departed().filter(OneOf("pk", list(matched)))
            matched -= set(departed.values_list("pk", flat=True))
        if matched:
            stage_key = (
                playbook.trigger_config.get("stage", "") if playbook.trigger_type == TriggerType.STAGE_ENTERED else ""
            )
            runs = runs_start(
                tenant=tenant,
                playbook=playbook,
                account_ids=matched,
                now=now,
                reason=f"Trigger {playbook.trigger_type} matched.",
                trigger_stage_key=stage_key,
            )
            if runs:
                started[playbook.pk] = len(runs)
    return started


def date_window(tenant, field, days_before, now):
    """The filter for accounts whose `field` falls `days_before` days after today in the tenant's zone."""
    zone = tenant_zone(tenant)
    day = now.astimezone(zone).date() + dt.timedelta(days=days_before)
    if field == "trial_ends_at":
        start = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
        return Q(trial_ends_at__gte=start, trial_ends_at__lt=start + dt.timedelta(days=1))
    return Q(**{field: day})


def playbooks_enroll_dates(*, tenant, now=None):
    """Date-relative triggers ("trial ends in 3 days"): one query per playbook over the tenant's accounts, those
    in a terminal stage left out."""
    now = now or timezone.now()
    started = {}
    for playbook in Playbook.objects.for_tenant(tenant).filter(enabled=True, trigger_type=TriggerType.DATE_RELATIVE):
        config = playbook.trigger_config
        ids = list(
            Account.objects.for_tenant(tenant)
            .filter(date_window(tenant, config["field"], config["days_before"], now))
            .still_customers()
            .values_list("pk", flat=True)
        )
        if ids:
            runs = runs_start(
                tenant=tenant,
                playbook=playbook,
                account_ids=ids,
                now=now,
                reason=f"{config['field']} in {config['days_before']} days.",
            )
            if runs:
                started[playbook.pk] = len(runs)
    return started


def runs_start_by_hand(*, tenant, playbook, account_ids, actor=None, now=None):
    """Start the playbook by hand, whatever its trigger, for those of these accounts that may enter it now (no
    active run of it, and its re-enrolment policy allows one); returns the runs started.

    Ids that are not the tenant's accounts start nothing.
    """
    if playbook.tenant_id != tenant.pk:
        raise ValidationError({"playbook": "Unknown playbook."})
    accounts = Account.objects.for_tenant(tenant).filter(OneOf("pk", sorted(set(account_ids))))
    return runs_start(
        tenant=tenant,
        playbook=playbook,
        account_ids=list(accounts.values_list("pk", flat=True)),
        now=now,
        reason="Started by hand.",
        started_by=actor,
    )


def run_start(*, tenant, playbook, account, actor=None, now=None):
    """Start one run by hand, whatever the trigger; the re-enrolment policy still holds."""
    if account.tenant_id != tenant.pk:
        raise ValidationError({"account": "Unknown account."})
    runs = runs_start_by_hand(tenant=tenant, playbook=playbook, account_ids=[account.pk], actor=actor, now=now)
    if not runs:
        raise ValidationError(
            {"account": "The account has an active run of this playbook or may not enter it again yet."}
        )
    return runs[0]


@transaction.atomic
def run_cancel(*, tenant, run, actor=None, reason="Cancelled by hand."):
    run = Run.objects.for_tenant(tenant).select_for_update().get(pk=run.pk)
    if run.status != RunStatus.ACTIVE:
        raise ValidationError({"status": f"The run is already {run.status}."})
    run_end(tenant=tenant, run=run, status=RunStatus.CANCELLED, reason=reason)
    audit_record(tenant=tenant, actor=actor, action="playbook_run.cancelled", obj=run)
    return run


def run_end(*, tenant, run, status, reason, now=None):
    """End a run; its steps not yet executed are skipped and their held emails dropped."""
    runs_end(tenant=tenant, runs=[run], status=status, reason=reason, now=now)


def runs_end(*, tenant, runs, status, reason, now=None):
    """End several runs alike in three statements; see run_end."""
    now = now or timezone.now()
    Run.objects.for_tenant(tenant).filter(pk__in=[run.pk for run in runs], status=RunStatus.ACTIVE).update(
        status=status, ended_at=now, reason=reason
    )
    open_steps = StepRun.objects.for_tenant(tenant).filter(
        run__in=[run.pk for run in runs], status__in=(StepRunStatus.PENDING, StepRunStatus.WAITING_REVIEW)
    )
    OutboundEmail.objects.for_tenant(tenant).filter(step_run__in=open_steps, status=EmailStatus.PENDING_REVIEW).update(
        status=EmailStatus.SKIPPED
    )
    open_steps.update(status=StepRunStatus.SKIPPED, finished_at=now, error=reason)
    for run in runs:
        run.status, run.ended_at, run.reason = status, now, reason


# Tasks


def _email(user):
    return user.email if user else None


def _task_event(action):
    """`(payload, idempotency key)` of a task.<action> webhook event for a task."""

    def event(task):
        payload = {
            "task": {
                "id": task.pk,
                "title": task.title,
                "description": task.description,
                "source": task.source,
                "owner": _email(task.owner),
                "due_at": task.due_at,
                "created_at": task.created_at,
                "completed_at": task.completed_at,
                "completed_by": _email(task.completed_by),
            },
            "account": account_payload(task.account) if task.account else None,
        }
        return payload, f"task:{task.pk}:{action}"

    return event


def _task_webhooks_emit(tenant, task_ids, action):
    tasks = Task.objects.for_tenant(tenant).filter(OneOf("pk", list(task_ids))).select_related(
        "account", "owner", "completed_by"
    )
    webhooks_emit(tenant=tenant, event_type=f"task.{action}", rows=tasks.order_by("pk"), event=_task_event(action))


@transaction.atomic
def task_create_once(*, tenant, key, account, owner, title, due_at, source, description="", given_by=None):
    """The task for `key`, created (and task.created emitted) the first time only.

    A task a member (`given_by`) gives to another is told to its owner in the app.
    """
    task, created = Task.objects.for_tenant(tenant).get_or_create(
        key=key,
        defaults={
            "tenant": tenant,
            "account": account,
            "owner": owner,
            "title": title[:300],
            "due_at": due_at,
            "source": source,
            "description": description,
        },
    )
    if created:
        _task_webhooks_emit(tenant, [task.pk], "created")
        if given_by is not None and owner is not None:
            _task_given_tell(tenant, task, given_by, key=f"task:{task.pk}:given")
    return task


@transaction.atomic
def tasks_complete(*, tenant, task_ids, user=None):
    """Mark those of these tasks of the tenant that are open done by `user`, each emitting task.completed;
    returns their ids. A task done already stays as it was done."""
    open_tasks = Task.objects.for_tenant(tenant).filter(OneOf("pk", sorted(set(task_ids))), completed_at__isnull=True)
    ids = list(open_tasks.select_for_update().order_by("pk").values_list("pk", flat=True))
    if ids:
        Task.objects.for_tenant(tenant).filter(OneOf("pk", ids)).update(completed_at=timezone.now(), completed_by=user)
        _task_webhooks_emit(tenant, ids, "completed")
    return ids


@transaction.atomic
def task_complete(*, tenant, task, user=None):
    """Mark the task done by `user` (see tasks_complete); returns it as stored."""
    tasks_complete(tenant=tenant, task_ids=[task.pk], user=user)
    return Task.objects.for_tenant(tenant).get(pk=task.pk)


def _task_snapshot(task):
    due_at = task.due_at.isoformat() if task.due_at else None
    return {"owner": task.owner.email if task.owner else None, "due_at": due_at}


@transaction.atomic
def task_change(*, tenant, task, owner, due_at, actor=None):
    """Give the task to `owner`, a member of the tenant (None: nobody yet), due at `due_at` (None: no date).

    Audited with what it was before. A task done stays as it was done.
    """
    if task.completed_at is not None:
        raise ValidationError({"task": "The task is done; a done task keeps its owner and date."})
    if owner is not None and not Membership.objects.for_tenant(tenant).filter(user=owner).exists():
        raise ValidationError({"owner": "Give a member of this tenant."})
    given = owner is not None and owner.pk != task.owner_id
    before = _task_snapshot(task)
    task.owner, task.due_at = owner, due_at
    task.save(update_fields=["owner", "due_at"])
    entry = audit_record(
        tenant=tenant, actor=actor, action="task.changed", obj=task, before=before, after=_task_snapshot(task)
    )
    if given:
        _task_given_tell(tenant, task, actor, key=f"task:{task.pk}:given:{entry.pk}")
    return task


def _task_given_tell(tenant, task, giver, key):
    """Tell a task's new owner in the app, unless they gave it to themselves."""
    if getattr(giver, "pk", None) == task.owner_id:
        return
    who = (giver.name or giver.email) if getattr(giver, "pk", None) else "Someone"
    about = f" for {task.account.name}" if task.account_id else ""
    member_tell(
        tenant=tenant,
        user=task.owner,
        subject=f"{who} gave you a task{about}: {task.title}",
        text=f"{who} gave you a task{about}: {task.title}",
        key=key,
        account=task.account,
    )


# Outbox: emails held for review


def _held(tenant, email):
    email = OutboundEmail.objects.for_tenant(tenant).select_for_update().get(pk=email.pk)
    if email.status != EmailStatus.PENDING_REVIEW:
        raise ValidationError({"status": f"The email is {email.status}, not waiting for review."})
    return email


def _resume_step(tenant, email):
    """When the step's last held email is decided, the step runs again to send and move on."""
    if email.step_run_id is None:
        return
    still_held = OutboundEmail.objects.for_tenant(tenant).filter(
        step_run_id=email.step_run_id, status=EmailStatus.PENDING_REVIEW
    )
    if not still_held.exists():
        StepRun.objects.for_tenant(tenant).filter(pk=email.step_run_id, status=StepRunStatus.WAITING_REVIEW).update(
            status=StepRunStatus.PENDING, due_at=timezone.now(), claimed_at=None
        )
        transaction.on_commit(_wake_runner)


@transaction.atomic
def outbox_edit(*, tenant, email, actor=None, **changes):
    email = _held(tenant, email)
    for name in ("subject", "text", "html"):
        if name in changes:
            setattr(email, name, changes[name])
    email.save(update_fields=["subject", "text", "html"])
    audit_record(tenant=tenant, actor=actor, action="email.edited", obj=email)
    return email


@transaction.atomic
def outbox_approve(*, tenant, email, actor=None, **changes):
    email = _held(tenant, email)
    for name in ("subject", "text", "html"):
        if name in changes:
            setattr(email, name, changes[name])
    email.status = EmailStatus.QUEUED
    email.save(update_fields=["subject", "text", "html", "status"])
    audit_record(tenant=tenant, actor=actor, action="email.approved", obj=email)
    _resume_step(tenant, email)
    return email


@transaction.atomic
def outbox_skip(*, tenant, email, actor=None):
    email = _held(tenant, email)
    email.status = EmailStatus.SKIPPED
    email.save(update_fields=["status"])
    audit_record(tenant=tenant, actor=actor, action="email.skipped", obj=email)
    _resume_step(tenant, email)
    return email


def outbox_decide_many(*, tenant, email_ids, approve, actor=None):
    """Approve (queue to send) or skip each of these emails of the tenant still held for review.

    Each is decided in a transaction of its own, as it would be one at a
    time, so an email someone else decided meanwhile is left as it is.
    Returns how many were decided here.
    """
    decide = outbox_approve if approve else outbox_skip
    held = OutboundEmail.objects.for_tenant(tenant).filter(
        OneOf("pk", sorted(set(email_ids))), status=EmailStatus.PENDING_REVIEW
    )
    decided = 0
    for email in held.order_by("pk"):
        try:
            decide(tenant=tenant, email=email, actor=actor)
        except ValidationError:
            continue  # no longer held: decided by someone else since the read
        decided += 1
    return decided


def playbook_templates_install(*, tenant, keys, actor=None, enabled=True):
    """Install ready-made playbooks by key (see playbooks.library); existing keys are left alone."""
    from .library import LIBRARY_BY_KEY

    unknown = [key for key in keys if key not in LIBRARY_BY_KEY]
    if unknown:
        raise ValidationError({"keys": f"Unknown playbook template(s): {', '.join(unknown)}."})
    installed = []
    for key in keys:
        if Playbook.objects.for_tenant(tenant).filter(key=key).exists():
            continue
        spec = LIBRARY_BY_KEY[key]()
        try:
            installed.append(playbook_create(tenant=tenant, actor=actor, enabled=enabled, **spec))
        except IntegrityError:
            continue
    return installed
