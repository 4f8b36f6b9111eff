"""The demo tenant as `make run` sets it up: seed 001's onboarding playbook played over the seeded past.

Every account that entered Onboarding in the replayed window got its welcome
email, two days later its demo invitation, and three days after that its
usage check, each once and at the time the live runner would have chosen.
"""

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone
from icalendar import Calendar

from alerts.models import Alert, AlertStatus, Channel, Notification, Resolution, SegmentMembership
from csplatform.customers.models import Account, AccountNote, ContactChange
from csplatform.tenancy.models import Tenant, User
from csplatform.tenancy.timezones import day_start, tenant_today
from health.models import HealthSnapshot
from lifecycle.models import StageTransition
from playbooks.backfill import day_close, history_replay
from playbooks.models import EmailStatus, OutboundEmail, Run, RunStatus, StepKind, StepRun, StepRunStatus, Task
from playbooks.runner import steps_run_due
from playbooks.scheduling import DEFAULT_HOURS, WORKDAYS, zone_of

from ..conftest import made_once

DAYS = 30
ACCOUNTS = 60


@pytest.fixture(scope="module")
def demo_id(django_db_setup, django_db_blocker):
    """The demo, seeded and set up once for the module."""
    with made_once(django_db_blocker):
        call_command("seed_demo", "--accounts", str(ACCOUNTS), stdout=io.StringIO())
        call_command("demo_setup", "--days", str(DAYS), stdout=io.StringIO())
        yield Tenant.objects.get(slug="demo").pk


@pytest.fixture
def demo(demo_id, db):
    return Tenant.objects.get(pk=demo_id)


def in_business_hours(moment, zone):
    local = moment.astimezone(zone)
    return local.weekday() in WORKDAYS and DEFAULT_HOURS[0] <= local.hour < DEFAULT_HOURS[1]


def left_onboarding_by(tenant, account_id, moment):
    return (
        StageTransition.objects.for_tenant(tenant)
        .filter(account_id=account_id, from_key="onboarding", at__lte=moment)
        .exists()
    )


def onboarding_entries(tenant):
    """{account id: moment} of entries into Onboarding inside the window that the account did not leave at once."""
    window_start = day_start(tenant, tenant_today(tenant) - dt.timedelta(days=DAYS - 1))
    replayed = StageTransition.objects.for_tenant(tenant).filter(to_key="onboarding", at__gte=window_start)
    return {
        entry.account_id: entry.at
        for entry in replayed
        if not left_onboarding_by(tenant, entry.account_id, entry.at)
    }


def the_one(queryset):
    rows = list(queryset)
    assert len(rows) == 1, rows
    return rows[0]


@pytest.mark.django_db
def test_every_account_that_entered_onboarding_in_the_window_got_each_step_once_at_its_past_time(demo):
    now, zone = timezone.now(), zone_of(demo)
    entries = onboarding_entries(demo)
    assert entries, "the seeded window should hold new onboarding accounts"
    runs = {run.account_id: run for run in Run.objects.for_tenant(demo)}
    assert runs.keys() == entries.keys()
    emails = OutboundEmail.objects.for_tenant(demo)
    completed_checks = 0
    for account_id, entered_at in entries.items():
        run = runs[account_id]
        assert run.started_at == entered_at
        steps = {
            step_run.step.kind: step_run
            for step_run in StepRun.objects.for_tenant(demo).filter(run=run).select_related("step")
        }

        welcome_step = steps[StepKind.SEND_EMAIL]
        if welcome_step.status == StepRunStatus.PENDING:
            # Entered after the last business hours went by: the welcome waits for the next ones.
            assert welcome_step.due_at > now and not emails.filter(step_run=welcome_step).exists()
            continue
        welcome = the_one(emails.filter(step_run=welcome_step))
        assert welcome.status == EmailStatus.SENT
        assert welcome.sent_at == welcome_step.finished_at
        assert entered_at < welcome.sent_at <= entered_at + dt.timedelta(days=4)
        assert in_business_hours(welcome.sent_at, zone)

        demo_step = steps[StepKind.SCHEDULE_DEMO]
        if demo_step.status == StepRunStatus.PENDING:
            assert demo_step.due_at > now
            continue
        if demo_step.status == StepRunStatus.SKIPPED:
            assert run.status == RunStatus.EXITED
            assert left_onboarding_by(demo, account_id, demo_step.finished_at)
            continue
        assert demo_step.status == StepRunStatus.DONE
        invitation = the_one(emails.filter(step_run=demo_step))
        assert invitation.status == EmailStatus.SENT
        assert dt.timedelta(days=2) <= invitation.sent_at - welcome.sent_at <= dt.timedelta(days=4)
        assert in_business_hours(invitation.sent_at, zone)
        (attachment,) = invitation.attachments
        event = the_one(Calendar.from_ical(attachment["content"]).walk("VEVENT"))
        assert event.decoded("dtstart") > invitation.sent_at
        assert in_business_hours(event.decoded("dtstart"), zone)
        the_one(Task.objects.for_tenant(demo).filter(key=f"steprun:{demo_step.pk}:demo"))

        check = steps[StepKind.USAGE_CHECK]
        if check.status == StepRunStatus.PENDING:
            assert check.due_at == demo_step.finished_at + dt.timedelta(days=3) > now
            continue
        if check.status == StepRunStatus.SKIPPED:
            assert left_onboarding_by(demo, account_id, check.finished_at)
            continue
        assert check.status == StepRunStatus.DONE
        assert check.finished_at == demo_step.finished_at + dt.timedelta(days=3)
        low_usage_tasks = Task.objects.for_tenant(demo).filter(key=f"steprun:{check.pk}:task")
        assert low_usage_tasks.count() == (0 if check.outcome["passed"] else 1)
        completed_checks += 1
    assert completed_checks, "the seeded window should hold onboarding accounts whose usage check is past"
    assert emails.count() == emails.filter(step_run__run__in=runs.values()).count()


@pytest.mark.django_db
def test_replaying_again_adds_nothing_and_leaves_the_live_runner_nothing_past_due(demo):
    def counts():
        return [
            model.objects.for_tenant(demo).count()
            for model in (StageTransition, Run, StepRun, OutboundEmail, Task, HealthSnapshot, Alert, SegmentMembership)
        ]

    before = counts()
    history_replay(tenant=demo, days=DAYS)
    output = io.StringIO()
    call_command("demo_setup", "--days", str(DAYS), stdout=output)

    assert counts() == before
    assert "nothing to do" in output.getvalue()
    assert steps_run_due() == 0


def test_alerts_open_and_resolve_at_the_past_days_closes_and_nobody_is_notified_of_the_past(demo):
    alerts = Alert.objects.for_tenant(demo)
    today_start = day_start(demo, tenant_today(demo))
    window_start = day_start(demo, tenant_today(demo) - dt.timedelta(days=DAYS - 1))
    past = alerts.filter(opened_at__lt=today_start)

    assert past.exists() and alerts.filter(status=AlertStatus.RESOLVED, resolution=Resolution.AUTO).exists()
    # Opened at a day's close inside the window; resolved at a later day's close, or today by the live pipeline.
    for alert in past:
        assert window_start <= alert.opened_at
        assert alert.opened_at.astimezone(zone_of(demo)).time() == dt.time(23, 59, 59)
        if alert.resolved_at and alert.resolved_at < today_start:
            assert alert.opened_at < alert.resolved_at
            assert alert.resolved_at.astimezone(zone_of(demo)).time() == dt.time(23, 59, 59)
        elif alert.resolved_at:
            assert alert.resolved_at <= timezone.now()
    assert not Notification.objects.for_tenant(demo).filter(alert__in=past).exists()


def test_segments_fill_at_the_past_days_closes_and_stays_end_after_they_began(demo):
    stays = SegmentMembership.objects.for_tenant(demo)
    today_start = day_start(demo, tenant_today(demo))
    window_start = day_start(demo, tenant_today(demo) - dt.timedelta(days=DAYS - 1))
    past = stays.filter(entered_at__lt=today_start)

    assert past.exists()
    for stay in past:
        assert window_start <= stay.entered_at
        assert stay.entered_at.astimezone(zone_of(demo)).time() == dt.time(23, 59, 59)
        if stay.left_at:
            assert stay.entered_at < stay.left_at <= today_start


@pytest.mark.django_db
def test_outbox_and_account_page_show_the_past_welcome_invitation_and_usage_check(demo, client):
    check = (
        StepRun.objects.for_tenant(demo)
        .filter(step__kind=StepKind.USAGE_CHECK, status=StepRunStatus.DONE)
        .order_by("-finished_at")
        .first()
    )
    welcome, invitation = OutboundEmail.objects.for_tenant(demo).filter(step_run__run=check.run).order_by("sent_at")
    client.force_login(User.objects.get(email="admin@demo.example"))

    sent = client.get("/t/demo/outbox/?status=sent").content.decode()
    demos = client.get("/t/demo/outbox/?kind=demo&status=sent").content.decode()
    account = client.get(f"/t/demo/accounts/{check.run.account_id}/").content.decode()

    assert f"/t/demo/outbox/{welcome.pk}/" in sent
    assert f"/t/demo/outbox/{invitation.pk}/" in demos
    assert f"/t/demo/outbox/{welcome.pk}/" not in demos
    assert "Schedule a demo: Done" in account
    assert "usage on target" in account or "usage below target" in account


def test_the_team_completed_most_past_tasks_and_acknowledged_most_past_alerts_after_they_fell_due(demo):
    before = timezone.now() - dt.timedelta(days=3)
    # A few minutes' margin: the setup's own "three days ago" was a moment earlier than this test's.
    past_tasks = Task.objects.for_tenant(demo).filter(due_at__lt=before - dt.timedelta(minutes=5), owner__isnull=False)
    done = past_tasks.filter(completed_at__isnull=False)

    # Every past task is done but every tenth (by id), which a busy team leaves open.
    assert past_tasks.exists()
    assert set(done.values_list("pk", flat=True)) == {pk for pk in past_tasks.values_list("pk", flat=True) if pk % 10}
    for task in done:
        assert task.completed_by_id == task.owner_id and task.due_at < task.completed_at < timezone.now()
    seen = Alert.objects.for_tenant(demo).filter(status=AlertStatus.ACKNOWLEDGED)
    assert seen.exists()
    for alert in seen.select_related("account"):
        assert alert.acknowledged_by_id == alert.account.owner_id
        assert alert.opened_at < alert.acknowledged_at < timezone.now()
    # The last few days' work is still the team's to do.
    assert not Task.objects.for_tenant(demo).filter(due_at__gte=before, completed_at__isnull=False).exists()


def test_the_team_noted_what_customers_said_and_an_admin_nudged_owners_through_their_notifications(demo):
    notes = AccountNote.objects.for_tenant(demo).select_related("account", "author")
    answered = notes.filter(key__startswith="demo:alert:")
    assert answered.exists()
    for note in answered:
        assert note.author_id == note.account.owner_id and note.created_at < timezone.now()

    nudges = notes.filter(key__startswith="demo:nudge:")
    told = Notification.objects.for_tenant(demo).filter(idempotency_key__startswith="note:").select_related("account")
    assert nudges.exists() and told.count() == nudges.count()
    # In the app only: nobody is emailed of the demo's past.
    assert set(told.values_list("channel", flat=True)) == {Channel.IN_APP}
    for notification in told:
        assert notification.user_id == notification.account.owner_id and notification.read_at is None
    assert {note.author.email for note in nudges} == {"admin@demo.example"}


@pytest.mark.django_db
def test_the_customers_that_churned_in_the_window_left_for_churned_at_their_days_close_with_their_reason(demo):
    first = tenant_today(demo) - dt.timedelta(days=DAYS - 1)
    churned = [
        (account, dt.date.fromisoformat(account.attributes["churned_at"]))
        for account in Account.objects.for_tenant(demo).filter(attributes__has_key="churned_at").select_related(
            "lifecycle__stage"
        )
    ]
    in_window = [(account, day) for account, day in churned if day >= first]
    assert in_window, "the seeded window should hold churned accounts"
    admin = User.objects.get(email="admin@demo.example")
    for account, day in in_window:
        move = the_one(StageTransition.objects.for_tenant(demo).filter(account=account, to_key="churned"))
        assert (move.kind, move.by_user, move.reason) == ("manual", admin, account.attributes["churn_reason"])
        assert move.at == day_start(demo, day + dt.timedelta(days=1)) - dt.timedelta(seconds=1)
        assert account.lifecycle.stage.key == "churned"
        assert not StageTransition.objects.for_tenant(demo).filter(account=account, at__gt=move.at).exists()


def test_a_few_champions_left_today_and_only_today_their_accounts_opened_the_no_champion_alert(demo):
    today_start = day_start(demo, tenant_today(demo))
    removals = ContactChange.objects.for_tenant(demo).filter(removed=True, at__gte=today_start)
    assert removals.exists()
    for removal in removals.select_related("account__lifecycle__stage"):
        assert removal.actor is None and removal.fields["role"] == ["champion", None]
        account = removal.account
        assert account.lifecycle.stage.key in ("adopting", "renewal")
        assert not account.contacts.filter(role="champion").exists()
        alert = the_one(Alert.objects.for_tenant(demo).filter(account=account, rule__key="no_champion"))
        assert alert.status == AlertStatus.OPEN and alert.opened_at > removal.at
    assert not Alert.objects.for_tenant(demo).filter(rule__key="no_champion", opened_at__lt=today_start).exists()


def test_a_customer_who_left_and_signed_in_again_yesterday_is_a_chance_to_win_back_open_since_yesterdays_close(
    demo,
):
    back = the_one(Alert.objects.for_tenant(demo).filter(rule__key="churned_back_in_the_product"))
    assert back.account.lifecycle.stage.key == "churned"
    assert back.status == AlertStatus.OPEN
    assert back.opened_at == day_close(demo, tenant_today(demo) - dt.timedelta(days=1))
