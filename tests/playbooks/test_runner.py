import datetime as dt
import re

import pytest
import time_machine
from django.test import override_settings
from django.urls import include, path

from alerts.models import Alert, WebhookDelivery
from alerts.services import segment_create, segments_refresh
from alerts.webhooks import webhook_subscription_create
from bench.processes import free_port
from csplatform.customers.ingest import events_ingest
from csplatform.customers.models import ContactRole, UsageEvent
from csplatform.tenancy.timezones import tenant_today
from health.models import HealthScore, HealthSnapshot
from lifecycle.models import AccountStage
from lifecycle.services import account_move_stage, lifecycle_advance
from playbooks.models import (
    EmailStatus,
    ExpansionOpportunity,
    OutboundEmail,
    Run,
    RunStatus,
    Step,
    StepRun,
    StepRunStatus,
    Task,
)
from playbooks.runner import step_execute, step_runs_claim, steps_run_due
from playbooks.services import playbook_create, playbooks_enroll, playbooks_enroll_dates, run_start
from playbooks.steps import PermanentStepError, StepContext
from tests.factories import AccountFactory, ContactFactory

pytestmark = pytest.mark.django_db

WEDNESDAY_NOON = dt.datetime(2024, 3, 6, 12, 0, tzinfo=dt.UTC)
EMAIL = {"kind": "send_email", "config": {"subject": "Hello {{ account.name }}", "text": "Hi {{ contact.first_name }}"}}

urlpatterns = [path("", include("csplatform.urls")), path("", include("playbooks.urls"))]


def make_playbook(tenant, steps, **fields):
    fields.setdefault("trigger_type", "manual")
    return playbook_create(
        tenant=tenant, actor=None, key=fields.pop("key", "p"), name="P", steps=steps, enabled=True, **fields
    )


# A server offering PIPELINING gets each envelope in one write; the outcomes must not change.
with_and_without_pipelining = pytest.mark.parametrize(
    "smtp_server", [False, True], indirect=True, ids=["one_command_at_a_time", "pipelined"]
)


@pytest.fixture
def noon():
    with time_machine.travel(WEDNESDAY_NOON, tick=False) as clock:
        yield clock


@with_and_without_pipelining
def test_a_step_executed_twice_sends_its_email_once(tenant, customer, smtp_server, noon):
    playbook = make_playbook(tenant, [EMAIL])
    run = run_start(tenant=tenant, playbook=playbook, account=customer)
    (step_run_id,) = step_runs_claim(now=WEDNESDAY_NOON, limit=10)
    assert step_execute(step_run_id=step_run_id) == StepRunStatus.DONE
    # A worker that lost track of its claim runs the same step again.
    StepRun.objects.for_tenant(tenant).filter(pk=step_run_id).update(status=StepRunStatus.RUNNING)
    step_execute(step_run_id=step_run_id)
    assert len(smtp_server.messages) == 1
    assert (
        OutboundEmail.objects.for_tenant(tenant).get().idempotency_key
        == f"steprun:{step_run_id}:email:{customer.contacts.get(role='administrator').pk}"
    )
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED


def test_a_demo_step_executed_twice_sends_its_invitation_once_with_the_same_slot(tenant, customer, smtp_server, noon):
    demo = {"kind": "schedule_demo", "config": {"days_ahead": 2, "duration_minutes": 30, "quiet_hours": False}}
    playbook = make_playbook(tenant, [demo, {"kind": "create_task", "config": {"title": "Follow up"}}])
    run_start(tenant=tenant, playbook=playbook, account=customer)
    (step_run_id,) = step_runs_claim(now=WEDNESDAY_NOON, limit=10)
    step_execute(step_run_id=step_run_id)
    first = StepRun.objects.for_tenant(tenant).get(pk=step_run_id).outcome
    # A worker that lost track of its claim runs the same step again, a day later.
    StepRun.objects.for_tenant(tenant).filter(pk=step_run_id).update(status=StepRunStatus.RUNNING)
    noon.shift(dt.timedelta(days=1))
    step_execute(step_run_id=step_run_id)
    again = StepRun.objects.for_tenant(tenant).get(pk=step_run_id).outcome
    assert len(smtp_server.messages) == 1
    assert again["emails"] == first["emails"] == [OutboundEmail.objects.for_tenant(tenant).get().pk]
    assert again["slot"] == first["slot"]


def test_a_claim_left_by_a_dead_worker_is_reclaimed_and_its_queued_email_sent_once(
    tenant, customer, smtp_server, noon, settings
):
    settings.CSP_PLAYBOOK_STALE_SECONDS = 300
    playbook = make_playbook(tenant, [EMAIL])
    run_start(tenant=tenant, playbook=playbook, account=customer)
    step_runs_claim(now=WEDNESDAY_NOON, limit=10)
    # Nothing is due while the claim is fresh...
    noon.shift(dt.timedelta(minutes=4))
    assert steps_run_due() == 0
    # ...and once it is stale the step runs again, exactly once.
    noon.shift(dt.timedelta(minutes=2))
    assert steps_run_due() == 1
    assert steps_run_due() == 0
    assert len(smtp_server.messages) == 1


@with_and_without_pipelining
def test_smtp_down_retries_with_backoff_then_sends(tenant, customer, smtp_server, noon, settings):
    playbook = make_playbook(tenant, [EMAIL])
    run_start(tenant=tenant, playbook=playbook, account=customer)
    real_port, settings.EMAIL_PORT = settings.EMAIL_PORT, free_port()
    assert steps_run_due() == 1
    step_run = StepRun.objects.for_tenant(tenant).get()
    assert (step_run.status, step_run.attempts, step_run.due_at) == (
        StepRunStatus.PENDING,
        1,
        WEDNESDAY_NOON + dt.timedelta(minutes=1),
    )
    assert "refused" in step_run.error.lower()
    noon.shift(dt.timedelta(minutes=1))
    assert steps_run_due() == 1
    step_run.refresh_from_db()
    assert (step_run.attempts, step_run.due_at) == (2, WEDNESDAY_NOON + dt.timedelta(minutes=3))
    settings.EMAIL_PORT = real_port
    noon.shift(dt.timedelta(minutes=2))
    assert steps_run_due() == 1
    step_run.refresh_from_db()
    assert step_run.status == StepRunStatus.DONE
    assert len(smtp_server.messages) == 1


@with_and_without_pipelining
def test_a_batch_larger_than_one_group_of_connections_sends_each_email_once(
    tenant, customer, smtp_server, noon, settings
):
    settings.CSP_SMTP_CONNECTIONS = 2
    playbook = make_playbook(tenant, [EMAIL, {"kind": "create_task", "config": {"title": "Next"}}])
    accounts = [customer] + [AccountFactory(tenant=tenant, name=f"Account {n}") for n in range(4)]
    for account in accounts[1:]:
        ContactFactory(account=account, role=ContactRole.ADMINISTRATOR)
    for account in accounts:
        run_start(tenant=tenant, playbook=playbook, account=account)
    assert steps_run_due() == 5
    assert smtp_server.subjects() == sorted(f"Hello {account.name}" for account in accounts)
    assert set(OutboundEmail.objects.for_tenant(tenant).values_list("status", flat=True)) == {EmailStatus.SENT}
    # Each run moved on to its second step, once.
    assert StepRun.objects.for_tenant(tenant).filter(sequence=1, status=StepRunStatus.PENDING).count() == 5


def test_a_step_failing_for_good_leaves_the_other_steps_of_its_batch_done(tenant, customer, smtp_server, noon):
    broken = make_playbook(tenant, [EMAIL], key="broken")
    working = make_playbook(tenant, [EMAIL], key="working")
    # A template that no longer renders, as one saved before a rendering rule changed.
    Step.objects.for_tenant(tenant).filter(playbook=broken).update(config={"subject": "Hi", "text": "{% if %}"})
    broken_run = run_start(tenant=tenant, playbook=broken, account=customer)
    working_run = run_start(tenant=tenant, playbook=working, account=customer)
    assert steps_run_due() == 2
    broken_run.refresh_from_db()
    working_run.refresh_from_db()
    assert (broken_run.status, working_run.status) == (RunStatus.FAILED, RunStatus.COMPLETED)
    assert smtp_server.subjects() == ["Hello Acme Rockets"]


def test_a_step_failing_for_good_after_its_first_email_keeps_none_of_its_emails(
    tenant, customer, smtp_server, noon, monkeypatch
):
    failing = make_playbook(tenant, [EMAIL], key="failing", audience_text='contact.role in ["user", "administrator"]')
    working = make_playbook(tenant, [EMAIL], key="working")
    real_render = StepContext.render

    def render_failing_for_ada(context, source, contact=None, *, html=False):
        if context.playbook.key == "failing" and contact is not None and contact.email == "ada@acme.example":
            raise PermanentStepError("Ada's email does not render.")
        return real_render(context, source, contact, html=html)

    monkeypatch.setattr(StepContext, "render", render_failing_for_ada)
    failing_run = run_start(tenant=tenant, playbook=failing, account=customer)
    run_start(tenant=tenant, playbook=working, account=customer)
    assert steps_run_due() == 2
    failing_run.refresh_from_db()
    assert failing_run.status == RunStatus.FAILED
    # Uma's email of the failed step was made before Ada's failed; it goes with the step.
    assert list(OutboundEmail.objects.for_tenant(tenant).values_list("to_email", "status")) == [
        ("ada@acme.example", EmailStatus.SENT)
    ]
    assert [str(message["To"]) for message in smtp_server.messages] == ["ada@acme.example"]
    assert StepRun.objects.for_tenant(tenant).get(run__playbook=working).outcome["emails"] == [
        OutboundEmail.objects.for_tenant(tenant).get().pk
    ]


@with_and_without_pipelining
def test_a_permanently_refused_recipient_fails_the_step_with_the_reason(
    tenant, customer, smtp_server, noon, monkeypatch
):
    async def refuse(server, session, envelope, address, rcpt_options):
        return "550 No such mailbox"

    monkeypatch.setattr(type(smtp_server), "handle_RCPT", staticmethod(refuse), raising=False)
    playbook = make_playbook(tenant, [EMAIL, {"kind": "create_task", "config": {"title": "Next"}}])
    run = run_start(tenant=tenant, playbook=playbook, account=customer)
    steps_run_due()
    email = OutboundEmail.objects.for_tenant(tenant).get()
    assert email.status == EmailStatus.FAILED and "550" in email.error
    # The step itself completes: the email's failure is recorded on the email.
    run.refresh_from_db()
    assert StepRun.objects.for_tenant(tenant).filter(run=run).count() == 2


def email_statuses_after_one_batch_to_acme_and_another(tenant, customer):
    """Acme's email and another account's, due together with Acme's first; returns {recipient: status}."""
    playbook = make_playbook(tenant, [EMAIL])
    other = AccountFactory(tenant=tenant, name="Other Corp")
    ContactFactory(account=other, email="olu@other.example", role=ContactRole.ADMINISTRATOR)
    run_start(tenant=tenant, playbook=playbook, account=customer)
    run_start(tenant=tenant, playbook=playbook, account=other)
    assert steps_run_due() == 2
    return dict(OutboundEmail.objects.for_tenant(tenant).values_list("to_email", "status"))


async def refuse_bob(server, session, envelope, address, mail_options):
    if address == "bob@alpha.example":
        return "550 Sender refused"
    envelope.mail_from, envelope.mail_options = address, mail_options
    return "250 OK"


async def refuse_acme(server, session, envelope, address, rcpt_options):
    if address.endswith("@acme.example"):
        return "550 No such mailbox"
    envelope.rcpt_tos.append(address)
    envelope.rcpt_options.extend(rcpt_options)
    return "250 OK"


@with_and_without_pipelining
@pytest.mark.parametrize(
    "hook, refusal", [("handle_MAIL", refuse_bob), ("handle_RCPT", refuse_acme)], ids=["sender", "recipient"]
)
def test_an_email_refused_for_good_leaves_the_connection_ready_for_the_next_one(
    tenant, customer, smtp_server, noon, monkeypatch, hook, refusal
):
    monkeypatch.setattr(type(smtp_server), hook, staticmethod(refusal), raising=False)
    assert email_statuses_after_one_batch_to_acme_and_another(tenant, customer) == {
        "ada@acme.example": EmailStatus.FAILED,
        "olu@other.example": EmailStatus.SENT,
    }
    assert smtp_server.subjects() == ["Hello Other Corp"]


@with_and_without_pipelining
@pytest.mark.parametrize(
    "answer, status", [("554 Content rejected", EmailStatus.FAILED), ("451 Try later", EmailStatus.QUEUED)]
)
def test_a_message_refused_at_its_end_leaves_the_connection_ready_for_the_next_one(
    tenant, customer, smtp_server, noon, monkeypatch, answer, status
):
    keep = type(smtp_server).handle_DATA

    async def refuse_acmes_message(inbox, server, session, envelope):
        if envelope.rcpt_tos == ["ada@acme.example"]:
            return answer
        return await keep(inbox, server, session, envelope)

    monkeypatch.setattr(type(smtp_server), "handle_DATA", refuse_acmes_message)
    assert email_statuses_after_one_batch_to_acme_and_another(tenant, customer) == {
        "ada@acme.example": status,
        "olu@other.example": EmailStatus.SENT,
    }
    assert smtp_server.subjects() == ["Hello Other Corp"]


@pytest.mark.parametrize("smtp_server", [True], indirect=True, ids=["pipelined"])
def test_a_server_taking_data_after_refusing_the_recipient_is_hung_up_on_and_gets_nothing(
    tenant, customer, smtp_server, noon, monkeypatch
):
    async def refuse_but_keep(server, session, envelope, address, rcpt_options):
        envelope.rcpt_tos.append(address)
        return "550 No such mailbox" if address.endswith("@acme.example") else "250 OK"

    monkeypatch.setattr(type(smtp_server), "handle_RCPT", staticmethod(refuse_but_keep), raising=False)
    assert email_statuses_after_one_batch_to_acme_and_another(tenant, customer) == {
        "ada@acme.example": EmailStatus.FAILED,
        "olu@other.example": EmailStatus.SENT,
    }
    assert smtp_server.subjects() == ["Hello Other Corp"]


def test_run_exits_when_the_account_leaves_the_trigger_stage(tenant, stages, customer, smtp_server, noon, alice):
    playbook = make_playbook(
        tenant,
        [EMAIL, {**EMAIL, "delay_minutes": 60 * 24}],
        trigger_type="stage_entered",
        trigger_config={"stage": "onboarding"},
    )
    moved = lifecycle_advance(tenant=tenant, account_ids=[customer.pk])
    playbooks_enroll(tenant=tenant, account_ids=[customer.pk], stage_changes=moved)
    steps_run_due()
    account_move_stage(tenant=tenant, account=customer, to_stage=stages["adopting"], actor=alice, reason="Set up.")
    noon.shift(dt.timedelta(days=1))
    steps_run_due()
    run = Run.objects.for_tenant(tenant).get(playbook=playbook)
    assert (run.status, run.reason) == (RunStatus.EXITED, "The account left the onboarding stage.")
    assert len(smtp_server.messages) == 1


def test_run_exits_before_a_step_when_exit_criteria_hold(tenant, customer, smtp_server, noon):
    playbook = make_playbook(tenant, [EMAIL], exit_criteria_text='account.plan == "enterprise"')
    customer.plan = "enterprise"
    customer.save()
    run = run_start(tenant=tenant, playbook=playbook, account=customer)
    steps_run_due()
    run.refresh_from_db()
    assert run.status == RunStatus.EXITED and "Exit criteria hold" in run.reason
    assert smtp_server.messages == []


def test_a_run_stops_when_the_customer_leaves_for_churned(tenant, stages, customer, smtp_server, noon, alice):
    playbook = make_playbook(tenant, [EMAIL, {**EMAIL, "delay_minutes": 60 * 24}])
    run_start(tenant=tenant, playbook=playbook, account=customer)
    steps_run_due()
    noon.shift(dt.timedelta(hours=2))
    account_move_stage(tenant=tenant, account=customer, to_stage=stages["churned"], actor=alice, reason="Budget cut")
    noon.shift(dt.timedelta(days=1))
    steps_run_due()

    run = Run.objects.for_tenant(tenant).get(playbook=playbook)
    assert (run.status, run.reason) == (RunStatus.EXITED, "The customer left: the account moved to Churned.")
    assert len(smtp_server.messages) == 1


def test_a_playbook_started_by_entering_churned_runs_for_the_customer_who_left(
    tenant, stages, customer, smtp_server, noon, alice
):
    farewell = make_playbook(tenant, [EMAIL], trigger_type="stage_entered", trigger_config={"stage": "churned"})
    account_move_stage(tenant=tenant, account=customer, to_stage=stages["churned"], actor=alice, reason="Budget cut")

    playbooks_enroll(tenant=tenant, account_ids=[customer.pk], stage_changes=[customer.pk])
    steps_run_due()

    assert Run.objects.for_tenant(tenant).get(playbook=farewell).status == RunStatus.COMPLETED
    assert len(smtp_server.messages) == 1


def test_a_playbook_started_by_hand_for_a_customer_who_had_left_runs(
    tenant, stages, customer, smtp_server, noon, alice
):
    account_move_stage(tenant=tenant, account=customer, to_stage=stages["churned"], actor=alice, reason="Budget cut")
    noon.shift(dt.timedelta(minutes=5))
    win_back = make_playbook(tenant, [EMAIL])

    run_start(tenant=tenant, playbook=win_back, account=customer)
    steps_run_due()

    assert Run.objects.for_tenant(tenant).get(playbook=win_back).status == RunStatus.COMPLETED
    assert len(smtp_server.messages) == 1


def test_date_and_health_triggers_leave_customers_who_left_alone(tenant, stages, customer, noon, alice):
    gone = AccountFactory(tenant=tenant, trial_ends_at=WEDNESDAY_NOON + dt.timedelta(days=3, hours=2))
    ending = AccountFactory(tenant=tenant, trial_ends_at=WEDNESDAY_NOON + dt.timedelta(days=3, hours=2))
    account_move_stage(tenant=tenant, account=gone, to_stage=stages["churned"], actor=alice, reason="Budget cut")
    task = [{"kind": "create_task", "config": {"title": "Call"}}]
    trial = make_playbook(tenant, task, key="trial", trigger_type="date_relative",
                          trigger_config={"field": "trial_ends_at", "days_before": 3})
    red = make_playbook(tenant, task, key="red", trigger_type="health_colour_changed", trigger_config={"colour": "red"})
    for account in (gone, ending):
        HealthScore.objects.create(tenant=tenant, account=account, score=10, colour="red", computed_score=10,
                                   computed_colour="red", breakdown=[], computed_at=WEDNESDAY_NOON)

    playbooks_enroll_dates(tenant=tenant)
    playbooks_enroll(tenant=tenant, account_ids=[gone.pk, ending.pk], health_changes=[gone.pk, ending.pk])

    runs = Run.objects.for_tenant(tenant)
    assert {(run.playbook_id, run.account_id) for run in runs} == {(trial.pk, ending.pk), (red.pk, ending.pk)}


def test_enrolment_policy_once_and_again_after_days(tenant, stages, customer, noon, alice):
    once = make_playbook(
        tenant,
        [{"kind": "create_task", "config": {"title": "t"}}],
        key="once",
        trigger_type="stage_entered",
        trigger_config={"stage": "onboarding"},
    )
    again = make_playbook(
        tenant,
        [{"kind": "create_task", "config": {"title": "t"}}],
        key="again",
        trigger_type="stage_entered",
        trigger_config={"stage": "onboarding"},
        enrollment_policy="again_after_days",
        again_after_days=7,
    )
    moved = lifecycle_advance(tenant=tenant, account_ids=[customer.pk])
    assert playbooks_enroll(tenant=tenant, account_ids=[customer.pk], stage_changes=moved) == {once.pk: 1, again.pk: 1}
    steps_run_due()

    def reenter(days):
        noon.shift(dt.timedelta(days=days))
        account_move_stage(tenant=tenant, account=customer, to_stage=stages["adopting"], actor=alice, reason="a")
        account_move_stage(tenant=tenant, account=customer, to_stage=stages["onboarding"], actor=alice, reason="b")
        return playbooks_enroll(tenant=tenant, account_ids=[customer.pk], stage_changes=[customer.pk])

    assert reenter(2) == {}
    assert reenter(6) == {again.pk: 1}


def test_one_active_run_per_account_even_when_enrolled_twice(tenant, stages, customer, noon):
    playbook = make_playbook(
        tenant,
        [{"kind": "create_task", "delay_minutes": 60, "config": {"title": "t"}}],
        trigger_type="stage_entered",
        trigger_config={"stage": "onboarding"},
        enrollment_policy="again_after_days",
        again_after_days=1,
    )
    moved = lifecycle_advance(tenant=tenant, account_ids=[customer.pk])
    playbooks_enroll(tenant=tenant, account_ids=[customer.pk], stage_changes=moved)
    noon.shift(dt.timedelta(days=2))
    playbooks_enroll(tenant=tenant, account_ids=[customer.pk], stage_changes=moved)
    assert Run.objects.for_tenant(tenant).filter(playbook=playbook, status=RunStatus.ACTIVE).count() == 1


def test_usage_check_failing_goes_back_to_an_earlier_step(tenant, customer, noon):
    steps = [
        {"kind": "create_task", "config": {"title": "Nudge {{ account.name }}"}},
        {
            "kind": "usage_check",
            "delay_minutes": 60,
            "config": {"criteria": "account.attributes.setup_done == true", "on_fail": {"action": "goto", "step": 0}},
        },
    ]
    playbook = make_playbook(tenant, steps)
    run = run_start(tenant=tenant, playbook=playbook, account=customer)
    steps_run_due()
    noon.shift(dt.timedelta(minutes=60))
    steps_run_due()
    steps_run_due()
    customer.attributes = {"setup_done": True}
    customer.save()
    noon.shift(dt.timedelta(minutes=60))
    steps_run_due()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert [(s.step.kind, s.outcome.get("passed")) for s in run.step_runs.order_by("sequence")] == [
        ("create_task", None),
        ("usage_check", False),
        ("create_task", None),
        ("usage_check", True),
    ]
    assert Task.objects.for_tenant(tenant).count() == 2


def test_usage_check_on_pass_end_stops_the_run(tenant, customer, noon):
    steps = [
        {"kind": "usage_check", "config": {"criteria": "account.mrr > 100", "on_pass": "end"}},
        {"kind": "create_task", "config": {"title": "never"}},
    ]
    run = run_start(tenant=tenant, playbook=make_playbook(tenant, steps), account=customer)
    steps_run_due()
    run.refresh_from_db()
    assert (run.status, run.reason) == (RunStatus.COMPLETED, "Usage check passed.")
    assert not Task.objects.for_tenant(tenant).exists()


def test_usage_check_failing_sends_the_inline_email(tenant, customer, smtp_server, noon):
    steps = [
        {
            "kind": "usage_check",
            "config": {
                "criteria": "account.mrr > 100000",
                "on_fail": {
                    "action": "send_email",
                    "subject": "Need a hand, {{ contact.first_name }}?",
                    "text": "We can help.",
                },
            },
        }
    ]
    run_start(tenant=tenant, playbook=make_playbook(tenant, steps), account=customer)
    steps_run_due()
    assert smtp_server.subjects() == ["Need a hand, Ada?"]


def test_audience_criteria_pick_the_recipients(tenant, customer, smtp_server, noon):
    playbook = make_playbook(tenant, [EMAIL], audience_text='contact.role in ["user", "administrator"]')
    run_start(tenant=tenant, playbook=playbook, account=customer)
    steps_run_due()
    assert sorted(str(m["To"]) for m in smtp_server.messages) == ["ada@acme.example", "uma@acme.example"]


@override_settings(ROOT_URLCONF=__name__)
def test_nps_one_click_link_records_the_score_once_and_a_comment(tenant, customer, smtp_server, noon, client):
    playbook = make_playbook(tenant, [{"kind": "nps_survey", "config": {"subject": "Quick question"}}])
    run_start(tenant=tenant, playbook=playbook, account=customer)
    steps_run_due()
    (message,) = smtp_server.messages
    links = dict(re.findall(r"^(\d+): \S+?(/nps/[^/\s]+/)", message.get_body(("plain",)).get_content(), re.M))
    assert sorted(int(score) for score in links) == list(range(11))
    assert client.get(links["9"]).status_code == 200
    assert client.get(links["3"]).status_code == 200
    assert client.post(links["9"], {"comment": "Great onboarding"}).status_code == 200
    events = UsageEvent.objects.for_tenant(tenant).order_by("event")
    assert [(e.event, e.properties) for e in events] == [
        ("nps.answered", {"score": 9}),
        ("nps.commented", {"score": 9, "comment": "Great onboarding"}),
    ]
    assert client.get(links["9"][:-3] + "xx/").status_code == 404
    noon.shift(dt.timedelta(days=15))
    assert client.get(links["9"]).status_code == 410


def test_update_account_moves_the_stage_and_sets_attributes(tenant, stages, customer, noon):
    lifecycle_advance(tenant=tenant, account_ids=[customer.pk])
    steps = [
        {"kind": "update_account", "config": {"attribute": "welcomed", "value": True}},
        {"kind": "update_account", "config": {"stage": "adopting", "reason": "Onboarding done."}},
    ]
    run_start(tenant=tenant, playbook=make_playbook(tenant, steps), account=customer)
    steps_run_due()
    steps_run_due()
    customer.refresh_from_db()
    assert customer.attributes == {"welcomed": True}
    assert AccountStage.objects.for_tenant(tenant).get(account=customer).stage.key == "adopting"


def test_date_relative_trigger_enrols_accounts_whose_trial_ends_in_n_days(tenant, noon):
    ending = AccountFactory(tenant=tenant, trial_ends_at=WEDNESDAY_NOON + dt.timedelta(days=3, hours=2))
    AccountFactory(tenant=tenant, trial_ends_at=WEDNESDAY_NOON + dt.timedelta(days=5))
    playbook = make_playbook(
        tenant,
        [{"kind": "create_task", "config": {"title": "Call before trial ends"}}],
        trigger_type="date_relative",
        trigger_config={"field": "trial_ends_at", "days_before": 3},
    )
    assert playbooks_enroll_dates(tenant=tenant) == {playbook.pk: 1}
    assert playbooks_enroll_dates(tenant=tenant) == {}
    assert list(Run.objects.for_tenant(tenant).values_list("account_id", flat=True)) == [ending.pk]


def test_event_received_trigger_enrols_on_a_new_event_only(tenant, customer, noon):
    playbook = make_playbook(
        tenant,
        [{"kind": "create_task", "config": {"title": "t"}}],
        trigger_type="event_received",
        trigger_config={"event": "export.failed"},
        enrollment_policy="again_after_days",
        again_after_days=1,
    )

    def ingest(message_id):
        events_ingest(
            tenant=tenant,
            events=[
                {
                    "message_id": message_id,
                    "account_id": customer.pk,
                    "contact_id": None,
                    "event": "export.failed",
                    "timestamp": dt.datetime.now(dt.UTC),
                    "properties": {},
                }
            ],
        )
        return playbooks_enroll(tenant=tenant, account_ids=[customer.pk])

    assert ingest("m1") == {playbook.pk: 1}
    steps_run_due()
    noon.shift(dt.timedelta(days=2))
    assert playbooks_enroll(tenant=tenant, account_ids=[customer.pk]) == {}
    assert ingest("m2") == {playbook.pk: 1}


def scored(tenant, account, days_ago, score):
    """The account's health snapshot `days_ago` days before today, as scoring would have written it."""
    HealthSnapshot.objects.update_or_create(
        tenant=tenant,
        account=account,
        day=tenant_today(tenant) - dt.timedelta(days=days_ago),
        defaults={"score": score, "colour": "red" if score < 40 else "green"},
    )


def test_health_triggers_enrol_on_score_and_colour(tenant, customer, noon):
    HealthScore.objects.create(tenant=tenant, account=customer, score=30, colour="red", computed_at=WEDNESDAY_NOON)
    scored(tenant, customer, 1, 55)
    scored(tenant, customer, 0, 30)
    below = make_playbook(
        tenant,
        [{"kind": "create_task", "config": {"title": "t"}}],
        key="below",
        trigger_type="health_below",
        trigger_config={"value": 40},
    )
    red = make_playbook(
        tenant,
        [{"kind": "create_task", "config": {"title": "t"}}],
        key="red",
        trigger_type="health_colour_changed",
        trigger_config={"colour": "red"},
    )
    make_playbook(
        tenant,
        [{"kind": "create_task", "config": {"title": "t"}}],
        key="above",
        trigger_type="health_above",
        trigger_config={"value": 40},
    )
    started = playbooks_enroll(tenant=tenant, account_ids=[customer.pk], health_changes=[customer.pk])
    assert started == {below.pk: 1, red.pk: 1}


def test_health_below_enrols_an_account_when_it_crosses_not_while_it_stays_below(tenant, customer, noon):
    playbook = make_playbook(
        tenant,
        [{"kind": "create_task", "config": {"title": "t"}}],
        trigger_type="health_below",
        trigger_config={"value": 40},
        enrollment_policy="again_after_days",
        again_after_days=1,
    )
    steady = AccountFactory(tenant=tenant)
    accounts = [customer.pk, steady.pk]
    for account, yesterday in ((customer, 55), (steady, 30)):
        scored(tenant, account, 1, yesterday)
        scored(tenant, account, 0, 30)
    assert playbooks_enroll(tenant=tenant, account_ids=accounts) == {playbook.pk: 1}
    assert Run.objects.for_tenant(tenant).get().account == customer
    steps_run_due()
    # Days later, still below: the policy would allow a second run, but nothing crossed.
    for days in (2, 3):
        noon.move_to(WEDNESDAY_NOON + dt.timedelta(days=days))
        scored(tenant, customer, 0, 30)
        assert playbooks_enroll(tenant=tenant, account_ids=accounts) == {}
    # Back above one day, below the next: a new crossing.
    noon.move_to(WEDNESDAY_NOON + dt.timedelta(days=5))
    scored(tenant, customer, 1, 60)
    scored(tenant, customer, 0, 35)
    assert playbooks_enroll(tenant=tenant, account_ids=accounts) == {playbook.pk: 1}


def test_health_above_does_not_enrol_an_account_scored_for_the_first_time(tenant, customer, noon):
    make_playbook(
        tenant,
        [{"kind": "create_task", "config": {"title": "t"}}],
        trigger_type="health_above",
        trigger_config={"value": 70},
    )
    scored(tenant, customer, 0, 90)
    assert playbooks_enroll(tenant=tenant, account_ids=[customer.pk]) == {}


def test_stage_left_trigger_enrols_the_accounts_that_left_the_stage(tenant, stages, customer, noon, alice):
    playbook = make_playbook(
        tenant,
        [{"kind": "create_task", "config": {"title": "t"}}],
        trigger_type="stage_left",
        trigger_config={"stage": "onboarding"},
    )
    staying = AccountFactory(tenant=tenant)
    for account in (customer, staying):
        account_move_stage(tenant=tenant, account=account, to_stage=stages["onboarding"], actor=alice, reason="Signed.")
    account_move_stage(tenant=tenant, account=customer, to_stage=stages["adopting"], actor=alice, reason="Set up.")
    changed = [customer.pk, staying.pk]
    assert playbooks_enroll(tenant=tenant, account_ids=changed, stage_changes=changed) == {playbook.pk: 1}
    assert Run.objects.for_tenant(tenant).get().account == customer


def test_a_step_due_at_once_runs_as_soon_as_the_enrolment_commits(
    tenant, customer, noon, monkeypatch, django_capture_on_commit_callbacks
):
    from playbooks.tasks import run_due_task

    enqueued = []
    monkeypatch.setattr(run_due_task, "apply_async", lambda **options: enqueued.append(options) or run_due_task())
    playbook = make_playbook(tenant, [{"kind": "create_task", "config": {"title": "Call {{ account.name }}"}}])
    with django_capture_on_commit_callbacks(execute=True):
        run_start(tenant=tenant, playbook=playbook, account=customer)
        assert enqueued == []
    assert enqueued == [{"expires": 300}]
    assert Task.objects.for_tenant(tenant).get().title == "Call Acme Rockets"
    assert Run.objects.for_tenant(tenant).get().status == RunStatus.COMPLETED


def test_a_send_retried_during_a_replay_is_due_again_by_the_replayed_clock(
    tenant, customer, smtp_server, noon, settings
):
    past = WEDNESDAY_NOON - dt.timedelta(days=7)
    run_start(tenant=tenant, playbook=make_playbook(tenant, [EMAIL]), account=customer, now=past)
    settings.EMAIL_PORT = free_port()
    step_run = StepRun.objects.for_tenant(tenant).get()
    StepRun.objects.for_tenant(tenant).filter(pk=step_run.pk).update(status=StepRunStatus.RUNNING, claimed_at=past)
    assert step_execute(step_run_id=step_run.pk, now=past) == StepRunStatus.PENDING
    step_run.refresh_from_db()
    assert (step_run.attempts, step_run.due_at) == (1, past + dt.timedelta(minutes=1))


def test_an_unsubscribed_primary_contact_is_recorded_and_nobody_else_is_written_to(
    tenant, customer, smtp_server, noon, client, bob
):
    customer.contacts.filter(role=ContactRole.ADMINISTRATOR).update(unsubscribed=True)
    run = run_start(tenant=tenant, playbook=make_playbook(tenant, [EMAIL]), account=customer)
    steps_run_due()
    assert smtp_server.messages == []
    email = OutboundEmail.objects.for_tenant(tenant).get()
    assert (email.to_email, email.status, email.subject) == (
        "ada@acme.example",
        EmailStatus.UNSUBSCRIBED,
        "Hello Acme Rockets",
    )
    step_run = StepRun.objects.for_tenant(tenant).get(run=run)
    assert (step_run.status, step_run.outcome["unsubscribed"]) == (StepRunStatus.DONE, ["ada@acme.example"])
    assert step_run.outcome["recipients"] == []
    client.force_login(bob)
    html = client.get(f"/t/alpha/accounts/{customer.pk}/").content.decode()
    assert "Not sent: unsubscribed" in html and "(not sent to ada@acme.example: unsubscribed)" in html


def test_an_audience_sends_to_subscribed_contacts_and_records_the_unsubscribed_ones(
    tenant, customer, smtp_server, noon
):
    customer.contacts.filter(role=ContactRole.USER).update(unsubscribed=True)
    playbook = make_playbook(tenant, [EMAIL], audience_text='contact.role in ["user", "administrator"]')
    run_start(tenant=tenant, playbook=playbook, account=customer)
    steps_run_due()
    assert [str(message["To"]) for message in smtp_server.messages] == ["ada@acme.example"]
    statuses = dict(OutboundEmail.objects.for_tenant(tenant).values_list("to_email", "status"))
    assert statuses == {"ada@acme.example": EmailStatus.SENT, "uma@acme.example": EmailStatus.UNSUBSCRIBED}
    assert StepRun.objects.for_tenant(tenant).get().outcome["unsubscribed"] == ["uma@acme.example"]


def test_a_demo_is_not_offered_to_another_contact_when_the_primary_one_unsubscribed(tenant, customer, noon):
    customer.contacts.filter(role=ContactRole.ADMINISTRATOR).update(unsubscribed=True)
    steps = [{"kind": "schedule_demo", "config": {"days_ahead": 3, "duration_minutes": 30}}]
    run_start(tenant=tenant, playbook=make_playbook(tenant, steps), account=customer)
    steps_run_due()
    outcome = StepRun.objects.for_tenant(tenant).get().outcome
    assert outcome == {"skipped": "No contact to invite.", "unsubscribed": ["ada@acme.example"]}
    assert not OutboundEmail.objects.for_tenant(tenant).exists() and not Task.objects.for_tenant(tenant).exists()


def test_emails_are_sent_from_the_owner_csm_with_replies_to_them(tenant, customer, smtp_server, noon):
    run_start(tenant=tenant, playbook=make_playbook(tenant, [EMAIL]), account=customer)
    steps_run_due()
    (message,) = smtp_server.messages
    assert (str(message["From"]), str(message["Reply-To"])) == ("Bob CSM <bob@alpha.example>", "bob@alpha.example")
    assert OutboundEmail.objects.for_tenant(tenant).get().from_email == "Bob CSM <bob@alpha.example>"


def test_emails_of_an_account_without_owner_come_from_the_default_sender(tenant, customer, smtp_server, noon, settings):
    settings.DEFAULT_FROM_EMAIL = "Alpha Success <success@alpha.example>"
    customer.owner = None
    customer.save()
    run_start(tenant=tenant, playbook=make_playbook(tenant, [EMAIL]), account=customer)
    steps_run_due()
    (message,) = smtp_server.messages
    assert str(message["From"]) == "Alpha Success <success@alpha.example>"
    assert message["Reply-To"] is None


def test_raise_alert_on_failed_usage_check(tenant, customer, noon):
    steps = [
        {
            "kind": "usage_check",
            "config": {
                "criteria": "account.mrr > 100000",
                "on_fail": {"action": "raise_alert", "title": "Low usage {{ account.name }}", "severity": "critical"},
            },
        }
    ]
    run_start(tenant=tenant, playbook=make_playbook(tenant, steps), account=customer)
    steps_run_due()
    alert = Alert.objects.for_tenant(tenant).get()
    assert (alert.title, alert.severity, alert.account_id) == ("Low usage Acme Rockets", "critical", customer.pk)


@pytest.fixture
def local_hooks(settings):
    settings.CSP_WEBHOOK_ALLOW_PRIVATE = True
    return "http://127.0.0.1:9/hooks"


def test_flag_expansion_records_the_opportunity_and_emits_the_webhook_once(tenant, customer, noon, local_hooks):
    webhook_subscription_create(tenant=tenant, actor=None, url=local_hooks, event_types=["account.expansion_flagged"])
    steps = [{"kind": "flag_expansion", "config": {"title": "Seats for {{ account.name }}"}}]
    run_start(tenant=tenant, playbook=make_playbook(tenant, steps), account=customer)
    (step_run_id,) = step_runs_claim(now=WEDNESDAY_NOON, limit=10)
    step_execute(step_run_id=step_run_id)
    StepRun.objects.for_tenant(tenant).filter(pk=step_run_id).update(status=StepRunStatus.RUNNING)
    step_execute(step_run_id=step_run_id)
    assert ExpansionOpportunity.objects.for_tenant(tenant).get().title == "Seats for Acme Rockets"
    delivery = WebhookDelivery.objects.for_tenant(tenant).get()
    assert delivery.event_type == "account.expansion_flagged"
    assert delivery.payload["opportunity"]["title"] == "Seats for Acme Rockets"


def test_call_webhook_step_emits_playbook_step_completed(tenant, customer, noon, local_hooks):
    webhook_subscription_create(tenant=tenant, actor=None, url=local_hooks, event_types=["playbook.step_completed"])
    steps = [{"kind": "call_webhook", "config": {"payload": {"crm_stage": "onboarded"}}}]
    run_start(tenant=tenant, playbook=make_playbook(tenant, steps, key="hooked"), account=customer)
    steps_run_due()
    delivery = WebhookDelivery.objects.for_tenant(tenant).get()
    assert delivery.event_type == "playbook.step_completed"
    assert delivery.payload["playbook"]["key"] == "hooked"
    assert delivery.payload["data"] == {"crm_stage": "onboarded"}
    assert delivery.payload["account"]["external_id"] == customer.external_id


def test_segment_entered_trigger_enrols_new_members(tenant, customer, noon):
    segment_create(
        tenant=tenant, actor=None, key="big_spenders", name="Big spenders", criteria_text="account.mrr >= 400"
    )
    playbook = make_playbook(
        tenant,
        [{"kind": "create_task", "config": {"title": "t"}}],
        trigger_type="segment_entered",
        trigger_config={"segment": "big_spenders"},
    )
    changes = segments_refresh(tenant=tenant, account_ids=[customer.pk])
    assert playbooks_enroll(tenant=tenant, account_ids=[customer.pk], segment_changes=changes) == {playbook.pk: 1}
