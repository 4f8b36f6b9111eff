"""Play a new tenant's past as the pipeline and the step runner would have lived it.

Imported or seeded data arrives all at once with months of usage behind it.
Run once today, the pipeline would place every account in its first stage
now and start every playbook today. `history_replay` instead walks the past
days in order, so stage moves, health snapshots and playbook runs carry the
times at which they would have happened, as if the tenant's playbooks had
been enabled all along. It reuses the live services with a past clock; it
writes no second copy of their logic. Segments fill and alerts open and
resolve at each day's close as the live pipeline's would, without notifying
anyone today of the past. Webhooks are not replayed: they start from today.
The customers that left in the window (their `churned_at` attribute, as
the health backtest reads it) are moved to the churned stage on their day,
as a team does when it hears. `team_work_replay` then plays the rest of the
people's part: the tasks and alerts the team dealt with over those days,
and the notes they wrote.
"""

import datetime as dt
from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone

from alerts.models import Alert, AlertStatus, SegmentMembership
from alerts.notifications import note_tell
from alerts.services import alerts_evaluate, segments_refresh
from csplatform.customers.models import Account, AccountNote
from csplatform.customers.services import note_add
from csplatform.rules.metrics import metrics_compute
from csplatform.tenancy.models import Membership, Role, User
from csplatform.tenancy.timezones import day_start, tenant_today, tenant_zone
from health.analysis import churn_day
from health.services import health_score
from lifecycle.models import Stage
from lifecycle.services import account_move_stage, lifecycle_advance

from .models import StepRun, StepRunStatus, Task
from .runner import step_execute
from .services import playbooks_enroll

# The team leaves the work of the last few days open: it is still theirs to do.
TEAM_BEHIND_DAYS = 3


def day_close(tenant, day):
    """The last second of `day` in the tenant's zone: past moves are stamped then, as a nightly sweep would."""
    return day_start(tenant, day + dt.timedelta(days=1)) - dt.timedelta(seconds=1)


def steps_replay(*, tenant, until):
    """Execute the tenant's pending steps due by `until`, oldest first, each with its due time as the clock.

    The live runner's step_execute does the work, so quiet hours, demo slots
    and usage checks see the step's own moment; a step put off to business
    hours comes round again in this loop when that time is before `until`.
    Returns the number of executions.
    """
    pending = StepRun.objects.for_tenant(tenant).filter(status=StepRunStatus.PENDING)
    executed = 0
    while True:
        due = pending.filter(due_at__lte=until).order_by("due_at", "id").values_list("pk", "due_at").first()
        if due is None:
            return executed
        step_run_id, due_at = due
        # Claimed by the same conditional update as the live runner's claim.
        if pending.filter(pk=step_run_id).update(status=StepRunStatus.RUNNING, claimed_at=due_at):
            step_execute(step_run_id=step_run_id, now=due_at)
            executed += 1


def history_replay(*, tenant, days=90, now=None):
    """Replay the last `days` days of the tenant (today excluded: the pipeline's live run does today).

    1. Accounts that signed up before the window open it in the stage that
       their metrics on the day before it earn, stamped at that day's close;
       they entered the lifecycle before the window, so no playbook enrols
       them for it.
    2. For each past day, oldest first:
       a. the playbook steps that fell due during the day run, each at its
          due time, reading the metrics and stages of the day before's close;
       b. at the day's close, as the pipeline would: metrics as of the day
          for the accounts signed up by then, health scored and the day's
          snapshot written, stage moves stamped at the close (moved accounts
          scored again with their new stage), accounts and contacts
          entering and leaving segments, the alert rules opening and
          resolving alerts, and playbooks enrol the accounts whose moves
          and segment entries match their triggers;
       c. then the accounts that churned that day are moved by an admin to
          the tenant's churned stage (a terminal stage whose outcome is
          churned), their `churn_reason` attribute the move's reason. As a
          move by hand on the board, it starts no playbook.
    3. The steps due between the last close and `now` run; later ones stay
       pending for the live runner. Metrics are left as of yesterday: the
       caller then runs the pipeline for today.
    Safe to run again: accounts keep their stages (those that left too),
    enrolment policies refuse a second run, steps already executed are no
    longer pending, and segments and alerts are replayed only for a tenant
    that has none of their rows yet (a later past, evaluated again, would
    close today's stays and alerts at yesterday's closes).
    Returns counts of the replay.
    """
    now = now or timezone.now()
    today = tenant_today(tenant)
    first = today - dt.timedelta(days=days - 1)
    accounts = Account.objects.for_tenant(tenant)
    replay_segments = not SegmentMembership.objects.for_tenant(tenant).exists()
    replay_alerts = not Alert.objects.for_tenant(tenant).exists()
    departures = Departures.of(tenant, first, today)
    opening = list(accounts.filter(Q(signup_date__isnull=True) | Q(signup_date__lt=first)).values_list("pk", flat=True))
    if opening:
        metrics_compute(tenant=tenant, account_ids=opening, today=first - dt.timedelta(days=1))
        lifecycle_advance(tenant=tenant, account_ids=opening, now=day_close(tenant, first - dt.timedelta(days=1)))
    executed = 0
    for offset in range(days - 1):
        day = first + dt.timedelta(days=offset)
        close = day_close(tenant, day)
        executed += steps_replay(tenant=tenant, until=close)
        ids = list(accounts.filter(Q(signup_date__isnull=True) | Q(signup_date__lte=day)).values_list("pk", flat=True))
        if not ids:
            continue
        metrics_compute(tenant=tenant, account_ids=ids, today=day)
        colour_changed = set(health_score(tenant=tenant, account_ids=ids, today=day, now=close))
        moved = lifecycle_advance(tenant=tenant, account_ids=ids, now=close)
        if moved:
            colour_changed |= set(health_score(tenant=tenant, account_ids=list(moved), today=day, now=close))
        # Before the alerts, whose rules may read the segments.
        segment_changes = segments_refresh(tenant=tenant, account_ids=ids, now=close) if replay_segments else ()
        if replay_alerts:
            alerts_evaluate(tenant=tenant, account_ids=ids, now=close, notify=False)
        playbooks_enroll(
            tenant=tenant, account_ids=ids, stage_changes=moved, health_changes=colour_changed,
            segment_changes=segment_changes, now=close,
        )
        if departures:
            departures.move(tenant, day, close)
    executed += steps_replay(tenant=tenant, until=now)
    return {"days": days, "steps_executed": executed}


@dataclass
class Departures:
    """The customers that churned in the replayed window, and who moves them where."""

    stage: Stage
    admin: User
    by_day: dict

    @classmethod
    def of(cls, tenant, first, last):
        """Those whose `churned_at` falls from `first` to `last`, unless moved already; None without a churned
        stage or an admin."""
        stages = Stage.objects.for_tenant(tenant).filter(is_terminal=True, outcome="churned")
        stage = stages.order_by("position").first()
        admin = first_admin(tenant)
        if stage is None or admin is None:
            return None
        by_day = {}
        churned = Account.objects.for_tenant(tenant).filter(attributes__has_key="churned_at")
        for account in churned.exclude(lifecycle__stage=stage).order_by("pk"):
            day = churn_day(account.attributes)
            if day is not None and first <= day <= last:
                by_day.setdefault(day, []).append(account)
        return cls(stage, admin, by_day)

    def move(self, tenant, day, close):
        """Move the day's departures to the churned stage at its close."""
        accounts = self.by_day.get(day, [])
        for account in accounts:
            reason = str(account.attributes.get("churn_reason") or "").strip() or "The customer left."
            account_move_stage(
                tenant=tenant, account=account, to_stage=self.stage, actor=self.admin, reason=reason, now=close
            )


def team_work_replay(*, tenant, now=None):
    """Play what the team did over the replayed past, which no service replays, being people's work.

    1. Each owner completed most of their tasks that fell due before the last
       few days, a few hours after each fell due. Every tenth task (by id)
       is left open, as a busy team leaves some.
    2. Each owner acknowledged most of the alerts still open on their
       accounts that opened before then, a few hours after each opened, and
       after every other one wrote a note on the account of what they heard
       from the customer. Every third alert is left open.
    3. An admin nudged the owners of a few accounts with an alert left open
       that long: a note on the account that tells its owner, so each such
       owner finds it among their notifications.

    Returns what each step did; safe to run again, as only open tasks and
    alerts change and each note has a key.
    """
    now = now or timezone.now()
    before = now - dt.timedelta(days=TEAM_BEHIND_DAYS)
    tasks = Task.objects.for_tenant(tenant).filter(completed_at__isnull=True, due_at__lt=before, owner__isnull=False)
    completed = [
        Task(pk=pk, completed_at=due_at + dt.timedelta(hours=1 + pk % 5), completed_by_id=owner_id)
        for pk, due_at, owner_id in tasks.values_list("pk", "due_at", "owner_id")
        if pk % 10
    ]
    Task.objects.for_tenant(tenant).bulk_update(completed, ["completed_at", "completed_by"])
    alerts = list(
        Alert.objects.for_tenant(tenant)
        .filter(status=AlertStatus.OPEN, opened_at__lt=before, account__owner__isnull=False)
        .select_related("account__owner", "rule")
    )
    acknowledged, notes = [], []
    for alert in alerts:
        if not alert.pk % 3:
            continue
        alert.status = AlertStatus.ACKNOWLEDGED
        alert.acknowledged_at = alert.opened_at + dt.timedelta(hours=2 + alert.pk % 20)
        alert.acknowledged_by = alert.account.owner
        acknowledged.append(alert)
        if alert.pk % 2:
            written = alert.acknowledged_at + dt.timedelta(minutes=20)
            notes.append(
                AccountNote(
                    tenant=tenant, account=alert.account, author=alert.account.owner, key=f"demo:alert:{alert.pk}",
                    body=f"{rule_name(alert)}: {CUSTOMER_ANSWERS[alert.pk % len(CUSTOMER_ANSWERS)]}",
                    created_at=written, updated_at=written,
                )
            )
    Alert.objects.for_tenant(tenant).bulk_update(acknowledged, ["status", "acknowledged_at", "acknowledged_by"])
    AccountNote.objects.for_tenant(tenant).bulk_create(notes, ignore_conflicts=True)
    left_open = [alert for alert in alerts if not alert.pk % 3]
    return {
        "tasks_completed": len(completed),
        "alerts_acknowledged": len(acknowledged),
        "notes_written": len(notes),
        "accounts_nudged": owners_nudge(tenant, left_open),
    }


# What owners heard when they called about an alert, as their notes put it.
CUSTOMER_ANSWERS = [
    "called the champion; they are rolling out to a second team next month and expect usage to pick up.",
    "their admin says usage dipped while they moved to SSO; it should recover this week.",
    "budget review pending on their side; they asked for a usage summary before the renewal talk.",
    "our champion moved to another role; the new admin wants a walkthrough, booked for next week.",
    "they had not found the reporting; sent a short guide and they are trying it with their team.",
    "the import ticket was the cause; support fixed it and they are back on track.",
]
NUDGED_ACCOUNTS = 5


def rule_name(alert):
    return alert.rule.name if alert.rule else alert.title


def first_admin(tenant):
    """The tenant's first admin, who plays the admins' part of its past; None without one."""
    admin = Membership.objects.for_tenant(tenant).filter(role=Role.ADMIN).select_related("user").order_by("pk").first()
    return admin.user if admin else None


def owners_nudge(tenant, alerts):
    """An admin's note on a few accounts whose alert stayed open, telling each account's owner; on how many."""
    admin = first_admin(tenant)
    if admin is None:
        return 0
    nudged = {}
    for alert in sorted(alerts, key=lambda alert: alert.opened_at):
        owner = alert.account.owner
        if owner != admin and alert.account_id not in nudged and len(nudged) < NUDGED_ACCOUNTS:
            nudged[alert.account_id] = (alert, owner)
    for alert, owner in nudged.values():
        opened = alert.opened_at.astimezone(tenant_zone(tenant))
        note = note_add(
            tenant=tenant, account=alert.account, author=admin, key=f"demo:nudge:{alert.pk}",
            body=f"The alert “{rule_name(alert)}” has been open since {opened:%b} {opened.day}. "
            "Can you call them before Monday's review and note here what you hear?",
        )
        # In the app only: no email of the demo's past.
        note_tell(tenant=tenant, note=note, users=[owner], by_email=False)
    return len(nudged)
