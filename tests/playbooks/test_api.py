import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from alerts.models import Channel, Notification
from alerts.services import segment_create
from csplatform.customers.models import ContactRole
from csplatform.tenancy.models import AuditLogEntry
from csplatform.tenancy.services import api_key_create
from lifecycle.services import account_move_stage, lifecycle_advance
from playbooks.models import EmailStatus, OutboundEmail, Playbook, Run, RunStatus, StepRunStatus, Task
from playbooks.runner import steps_run_due
from playbooks.services import playbook_steps, playbook_templates_install, playbook_update
from playbooks.simulation import simulate
from tests.factories import AccountFactory, ContactFactory

pytestmark = pytest.mark.django_db

WEDNESDAY_NOON = dt.datetime(2024, 3, 6, 12, 0, tzinfo=dt.UTC)


def playbook_body(**overrides):
    body = {
        "key": "renewal_nudge",
        "name": "Renewal nudge",
        "trigger_type": "manual",
        "steps": [
            {
                "kind": "send_email",
                "config": {"subject": "Hello {{ account.name }}", "text": "Hi {{ contact.first_name }}"},
            },
            {
                "kind": "create_task",
                "delay_minutes": 60,
                "config": {"title": "Call {{ account.name }}", "due_in_days": 2},
            },
        ],
    }
    body.update(overrides)
    return body


def field_errors(response):
    return {item["field"]: item["message"] for item in response.json()["error"]["fields"]}


def test_playbook_is_created_with_validated_steps_and_read_back(api, stages):
    response = api.post("/api/v1/playbooks/", playbook_body(), format="json")
    assert response.status_code == 201, response.json()
    data = api.get("/api/v1/playbooks/renewal_nudge/").json()
    assert [(step["position"], step["kind"], step["delay_minutes"]) for step in data["steps"]] == [
        (0, "send_email", 0),
        (1, "create_task", 60),
    ]
    assert data["steps"][1]["config"]["due_in_days"] == 2
    assert data["enabled"] is False


def test_unknown_step_kind_answers_400_naming_the_step(api, stages):
    body = playbook_body()
    body["steps"].append({"kind": "send_fax", "config": {}})
    response = api.post("/api/v1/playbooks/", body, format="json")
    assert response.status_code == 400
    assert "Unknown step kind 'send_fax'" in field_errors(response)["steps[2].kind"]


def test_template_that_does_not_render_answers_400_naming_the_step_and_field(api, stages):
    body = playbook_body()
    body["steps"][0]["config"]["html"] = "<p>{% load static %}</p>"
    body["steps"][1]["config"]["title"] = "Call {{ account.name|nosuchfilter }}"
    response = api.post("/api/v1/playbooks/", body, format="json")
    assert response.status_code == 400
    errors = field_errors(response)
    assert "does not render" in errors["steps[0].config.html"] and "load" in errors["steps[0].config.html"]
    assert "nosuchfilter" in errors["steps[1].config.title"]


def test_audience_that_does_not_parse_answers_400(api, stages):
    response = api.post("/api/v1/playbooks/", playbook_body(audience_text="contact.role === 'x'"), format="json")
    assert response.status_code == 400
    assert "do not parse" in field_errors(response)["audience_text"]


def test_trigger_stage_must_exist_and_usage_check_needs_criteria(api, stages):
    body = playbook_body(trigger_type="stage_entered", trigger_config={"stage": "nowhere"})
    body["steps"].append({"kind": "usage_check", "config": {"on_fail": {"action": "goto", "step": 9}}})
    response = api.post("/api/v1/playbooks/", body, format="json")
    errors = field_errors(response)
    assert response.status_code == 400
    assert "nowhere" in errors["trigger_config.stage"]
    assert "steps[2].config.criteria" in errors
    assert "from 0 to 2" in errors["steps[2].config.on_fail.step"]


def test_a_segment_trigger_names_one_of_the_tenants_own_segments(api, tenant, other_tenant, stages):
    segment_create(tenant=other_tenant, actor=None, key="at_risk", name="At risk", criteria_text="account.mrr > 0")
    body = playbook_body(trigger_type="segment_entered", trigger_config={"segment": "at_risk"})

    response = api.post("/api/v1/playbooks/", body, format="json")
    assert response.status_code == 400
    assert "at_risk" in field_errors(response)["trigger_config.segment"]

    segment_create(tenant=tenant, actor=None, key="at_risk", name="At risk", criteria_text="account.mrr > 0")
    assert api.post("/api/v1/playbooks/", body, format="json").status_code == 201


def test_enable_disable_and_another_tenants_playbook_is_404(api, other_api, stages):
    api.post("/api/v1/playbooks/", playbook_body(), format="json")
    assert api.post("/api/v1/playbooks/renewal_nudge/enable/").json()["enabled"] is True
    assert api.post("/api/v1/playbooks/renewal_nudge/disable/").json()["enabled"] is False
    assert other_api.get("/api/v1/playbooks/renewal_nudge/").status_code == 404
    assert other_api.post("/api/v1/playbooks/renewal_nudge/enable/").status_code == 404


def test_deleting_a_playbook_removes_it_with_its_runs_and_leaves_an_audit_entry(
    api, other_api, tenant, stages, customer
):
    api.post("/api/v1/playbooks/", playbook_body(), format="json")
    api.post("/api/v1/playbooks/renewal_nudge/start/", {"account": customer.pk}, format="json")
    assert other_api.delete("/api/v1/playbooks/renewal_nudge/").status_code == 404
    assert api.delete("/api/v1/playbooks/renewal_nudge/").status_code == 204
    assert api.get("/api/v1/playbooks/renewal_nudge/").status_code == 404
    assert not Run.objects.for_tenant(tenant).exists()
    entry = AuditLogEntry.objects.for_tenant(tenant).get(action="playbook.deleted")
    assert entry.before["key"] == "renewal_nudge" and len(entry.before["steps"]) == 2


def test_an_email_left_out_for_an_unsubscribed_contact_shows_in_the_email_log_and_the_run(
    api, stages, customer, smtp_server
):
    customer.contacts.filter(role=ContactRole.ADMINISTRATOR).update(unsubscribed=True)
    api.post("/api/v1/playbooks/", playbook_body(), format="json")
    with time_machine.travel(WEDNESDAY_NOON, tick=False):
        api.post("/api/v1/playbooks/renewal_nudge/start/", {"account": customer.pk}, format="json")
        steps_run_due()
    (email,) = api.get(f"/api/v1/emails/?account={customer.pk}").json()["results"]
    assert (email["to_email"], email["status"], email["from_email"]) == (
        "ada@acme.example",
        EmailStatus.UNSUBSCRIBED,
        "Bob CSM <bob@alpha.example>",
    )
    run = api.get("/api/v1/playbook-runs/").json()["results"][0]
    assert run["steps"][0]["outcome"]["unsubscribed"] == ["ada@acme.example"]
    assert smtp_server.messages == []


def test_manual_start_runs_steps_then_cancel_skips_the_rest(api, other_api, stages, customer, smtp_server, bob):
    api.post("/api/v1/playbooks/", playbook_body(), format="json")
    with time_machine.travel(WEDNESDAY_NOON, tick=False):
        response = api.post("/api/v1/playbooks/renewal_nudge/start/", {"account": customer.pk}, format="json")
        assert response.status_code == 201, response.json()
        run_id = response.json()["id"]
        # One active run per account and playbook.
        again = api.post("/api/v1/playbooks/renewal_nudge/start/", {"account": customer.pk}, format="json")
        assert again.status_code == 400
        assert steps_run_due() == 1
    assert smtp_server.subjects() == ["Hello Acme Rockets"]
    run = api.get(f"/api/v1/playbook-runs/?account={customer.pk}").json()["results"][0]
    assert [(step["kind"], step["status"]) for step in run["steps"]] == [
        ("send_email", "done"),
        ("create_task", "pending"),
    ]
    assert other_api.post(f"/api/v1/playbook-runs/{run_id}/cancel/").status_code == 404
    cancelled = api.post(f"/api/v1/playbook-runs/{run_id}/cancel/").json()
    assert cancelled["status"] == "cancelled"
    assert [step["status"] for step in cancelled["steps"]] == ["done", "skipped"]
    with time_machine.travel(WEDNESDAY_NOON + dt.timedelta(hours=2), tick=False):
        assert steps_run_due() == 0
    assert not Task.objects.for_tenant(customer.tenant).exists()


def test_another_tenants_account_cannot_be_started(api, stages, other_tenant):
    api.post("/api/v1/playbooks/", playbook_body(), format="json")
    foreign = AccountFactory(tenant=other_tenant)
    response = api.post("/api/v1/playbooks/renewal_nudge/start/", {"account": foreign.pk}, format="json")
    assert response.status_code == 400
    assert not Run.objects.dangerously_all_tenants().exists()


def test_tasks_are_listed_by_owner_completed_and_reassigned(api, other_api, tenant, stages, customer, bob, alice):
    api.post(
        "/api/v1/playbooks/",
        playbook_body(steps=[{"kind": "create_task", "config": {"title": "Call {{ account.name }}"}}]),
        format="json",
    )
    api.post("/api/v1/playbooks/renewal_nudge/start/", {"account": customer.pk}, format="json")
    steps_run_due()
    tasks = api.get(f"/api/v1/tasks/?owner={bob.email}&open=true").json()["results"]
    assert [task["title"] for task in tasks] == ["Call Acme Rockets"]
    task_id = tasks[0]["id"]
    assert other_api.post(f"/api/v1/tasks/{task_id}/complete/").status_code == 404
    assert (
        api.post(f"/api/v1/tasks/{task_id}/reassign/", {"owner": "nobody@else.example"}, format="json").status_code
        == 400
    )
    assert (
        api.post(f"/api/v1/tasks/{task_id}/reassign/", {"owner": alice.email}, format="json").json()["owner"]
        == alice.email
    )
    assert api.post(f"/api/v1/tasks/{task_id}/complete/").json()["completed_at"] is not None
    assert api.get(f"/api/v1/tasks/?owner={alice.email}&open=true").json()["results"] == []


def test_an_integration_creates_a_task_for_the_accounts_owner_once_per_key(api, tenant, customer, bob):
    body = {"account": customer.pk, "title": "Call about the renewal", "due_at": "2027-01-15T09:00:00Z", "key": "crm-1"}

    first, again = (api.post("/api/v1/tasks/", body, format="json") for _ in range(2))

    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["id"] == again.json()["id"]
    task = first.json()
    assert (task["account"], task["owner"], task["source"], task["due_at"]) == (
        customer.pk, bob.email, "api", "2027-01-15T09:00:00Z"
    )
    assert "key" not in task
    assert Task.objects.for_tenant(tenant).count() == 1
    with CaptureQueriesContext(connection) as listing:
        listed = api.get(f"/api/v1/tasks/?owner={bob.email}&open=true").json()["results"]
    assert [(row["id"], row["account"]) for row in listed] == [(task["id"], customer.pk)]
    assert not any('"customers_account"' in query["sql"] for query in listing.captured_queries)


def test_a_task_given_through_a_members_key_tells_its_owner_and_a_task_of_no_account_is_the_creators(
    tenant, customer, alice, bob
):
    _, raw_key = api_key_create(tenant=tenant, name="CRM", scopes=["read", "write"], created_by=alice)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    given = api.post("/api/v1/tasks/", {"account": customer.pk, "title": "Renewal call"}, format="json").json()
    own = api.post("/api/v1/tasks/", {"title": "Review the CRM sync"}, format="json").json()

    assert (given["owner"], own["owner"], own["account"]) == (bob.email, alice.email, None)
    told = Notification.objects.for_tenant(tenant).filter(channel=Channel.IN_APP).values_list("user", "subject")
    assert list(told) == [(bob.pk, "Alice Admin gave you a task for Acme Rockets: Renewal call")]


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({"account": "theirs", "title": "Call"}, "account", "No account has the id"),
        ({"title": "Call", "owner": "nobody@else.example"}, "owner", "nobody@else.example is not a member"),
        ({"title": ""}, "title", "This field may not be blank."),
        ({"title": "Call", "assignee": "bob@alpha.example"}, "assignee", "Unknown field."),
        ({"title": "Call", "due_at": "next week"}, "due_at", "Datetime has wrong format."),
    ],
)
def test_a_task_that_cannot_be_created_is_a_400_naming_the_field(api, tenant, other_tenant, body, field, message):
    if body.get("account") == "theirs":
        body = body | {"account": AccountFactory(tenant=other_tenant).pk}

    response = api.post("/api/v1/tasks/", body, format="json")

    assert response.status_code == 400
    (error,) = response.json()["error"]["fields"]
    assert error["field"] == field and message in error["message"]
    assert not Task.objects.dangerously_all_tenants().exists()


def test_emails_are_filtered_by_their_owner_csm(api, tenant, stages, customer, bob, alice, smtp_server):
    api.post("/api/v1/playbooks/", playbook_body(steps=[playbook_body()["steps"][0]]), format="json")
    with time_machine.travel(WEDNESDAY_NOON, tick=False):
        api.post("/api/v1/playbooks/renewal_nudge/start/", {"account": customer.pk}, format="json")
        steps_run_due()

    mine = api.get(f"/api/v1/emails/?owner={bob.email.upper()}").json()["results"]
    assert [email["owner"] for email in mine] == [bob.email]
    assert api.get(f"/api/v1/emails/?owner={alice.email}").json()["results"] == []
    assert api.get("/api/v1/emails/?owner=not-an-email").status_code == 400


def test_email_held_for_review_is_edited_then_approved_and_sent_once(api, stages, customer, smtp_server):
    steps = [
        {
            "kind": "send_email",
            "config": {"subject": "Draft for {{ account.name }}", "text": "Hi", "requires_review": True},
        },
        {"kind": "create_task", "config": {"title": "Follow up"}},
    ]
    api.post("/api/v1/playbooks/", playbook_body(steps=steps), format="json")
    with time_machine.travel(WEDNESDAY_NOON, tick=False):
        api.post("/api/v1/playbooks/renewal_nudge/start/", {"account": customer.pk}, format="json")
        steps_run_due()
        held = api.get("/api/v1/emails/?status=pending_review").json()["results"]
        assert [email["subject"] for email in held] == ["Draft for Acme Rockets"]
        assert smtp_server.messages == []
        run = Run.objects.for_tenant(customer.tenant).get()
        assert run.step_runs.get().status == StepRunStatus.WAITING_REVIEW
        email_id = held[0]["id"]
        edited = api.post(f"/api/v1/emails/{email_id}/edit/", {"text": "Hello Ada, edited by hand."}, format="json")
        assert edited.json()["status"] == "pending_review"
        approved = api.post(f"/api/v1/emails/{email_id}/approve/", {"subject": "Checked for Acme"}, format="json")
        assert approved.json()["status"] == "queued"
        assert api.post(f"/api/v1/emails/{email_id}/skip/").status_code == 400
        steps_run_due()
        steps_run_due()
    assert smtp_server.subjects() == ["Checked for Acme"]
    assert smtp_server.messages[0].get_body(("plain",)).get_content().strip() == "Hello Ada, edited by hand."
    assert Task.objects.for_tenant(customer.tenant).get().title == "Follow up"
    assert Run.objects.for_tenant(customer.tenant).get().status == RunStatus.COMPLETED


def test_skipped_review_email_is_never_sent_and_the_run_moves_on(api, stages, customer, smtp_server):
    steps = [{"kind": "send_email", "config": {"subject": "S", "text": "T", "requires_review": True}}]
    api.post("/api/v1/playbooks/", playbook_body(steps=steps), format="json")
    with time_machine.travel(WEDNESDAY_NOON, tick=False):
        api.post("/api/v1/playbooks/renewal_nudge/start/", {"account": customer.pk}, format="json")
        steps_run_due()
        email = OutboundEmail.objects.for_tenant(customer.tenant).get()
        assert api.post(f"/api/v1/emails/{email.pk}/skip/").json()["status"] == EmailStatus.SKIPPED
        steps_run_due()
    assert smtp_server.messages == []
    assert Run.objects.for_tenant(customer.tenant).get().status == RunStatus.COMPLETED


def test_simulate_reports_who_would_have_been_enrolled_and_sends_nothing(api, tenant, stages, customer, smtp_server):
    playbook_templates_install(tenant=tenant, keys=["onboarding_welcome"], enabled=False)
    with time_machine.travel(WEDNESDAY_NOON - dt.timedelta(days=10), tick=False):
        lifecycle_advance(tenant=tenant, account_ids=[customer.pk])
    with time_machine.travel(WEDNESDAY_NOON, tick=False):
        report = api.post("/api/v1/playbooks/onboarding_welcome/simulate/", {"days": 30}, format="json").json()
    assert report["enrolled"] == 1
    (run,) = report["runs"]
    assert run["account"]["name"] == "Acme Rockets"
    assert [(step["kind"], step.get("to")) for step in run["steps"]] == [
        ("send_email", ["ada@acme.example"]),
        ("schedule_demo", ["ada@acme.example"]),
        ("usage_check", None),
    ]
    assert run["steps"][0]["subject"] == "Welcome to the team, Acme Rockets"
    assert report["emails"] == 2
    assert smtp_server.messages == [] and not Run.objects.for_tenant(tenant).exists()


def enter_onboarding(tenant, *accounts):
    with time_machine.travel(WEDNESDAY_NOON - dt.timedelta(days=10), tick=False):
        lifecycle_advance(tenant=tenant, account_ids=[account.pk for account in accounts])


def onboarding_body(**overrides):
    trigger = {"trigger_type": "stage_entered", "trigger_config": {"stage": "onboarding"}, "days": 30}
    return playbook_body(**{**trigger, **overrides})


def simulated(api, path, body):
    with time_machine.travel(WEDNESDAY_NOON, tick=False):
        return api.post(path, body, format="json")


def test_a_new_playbook_is_simulated_from_its_definition_without_being_saved(api, tenant, stages, customer):
    enter_onboarding(tenant, customer)
    response = simulated(api, "/api/v1/playbooks/simulate/", onboarding_body())
    assert response.status_code == 200, response.json()
    (run,) = response.json()["runs"]
    assert [(step["kind"], step.get("to")) for step in run["steps"]] == [
        ("send_email", ["ada@acme.example"]),
        ("create_task", None),
    ]
    assert not Playbook.objects.for_tenant(tenant).exists()


def test_simulating_a_definition_answers_400_naming_the_field_in_error(api, stages):
    bad_stage = onboarding_body(trigger_config={"stage": "nowhere"})
    response = api.post("/api/v1/playbooks/simulate/", bad_stage, format="json")
    assert response.status_code == 400
    assert "nowhere" in field_errors(response)["trigger_config.stage"]
    no_steps = onboarding_body()
    del no_steps["steps"]
    response = api.post("/api/v1/playbooks/simulate/", no_steps, format="json")
    assert field_errors(response)["steps"] == "A playbook needs at least one step."


def test_a_saved_playbook_is_simulated_as_changed_without_saving_the_change(api, tenant, stages, customer):
    playbook_templates_install(tenant=tenant, keys=["onboarding_welcome"], enabled=False)
    enter_onboarding(tenant, customer)
    change = {"days": 30, "steps": [{"kind": "create_task", "config": {"title": "Call"}}]}
    report = simulated(api, "/api/v1/playbooks/onboarding_welcome/simulate/", change).json()
    assert [step["kind"] for run in report["runs"] for step in run["steps"]] == ["create_task"]
    bad = simulated(api, "/api/v1/playbooks/onboarding_welcome/simulate/", {"enrollment_policy": "again_after_days"})
    assert "again_after_days" in field_errors(bad)
    saved = Playbook.objects.for_tenant(tenant).get()
    assert [step.kind for step in playbook_steps(tenant, saved)] == ["send_email", "schedule_demo", "usage_check"]


def test_simulating_a_playbook_whose_audience_reads_a_deleted_metric_answers_400(api, tenant, stages, customer):
    from csplatform.rules.models import MetricDefinition
    from csplatform.rules.services import metric_definition_create, metric_definition_delete

    metric_definition_create(tenant=tenant, actor=None, fields={
        "key": "reports", "label": "Reports", "subject": "contact", "event_names": ["report_created"],
        "window_days": 30, "aggregation": "count",
    })
    playbook_templates_install(tenant=tenant, keys=["onboarding_welcome"], enabled=False)
    playbook = Playbook.objects.for_tenant(tenant).get()
    playbook_update(tenant=tenant, playbook=playbook, actor=None, audience_text="contact.metric.reports >= 1")
    metric_definition_delete(tenant=tenant, definition=MetricDefinition.objects.for_tenant(tenant).get())

    response = simulated(api, "/api/v1/playbooks/onboarding_welcome/simulate/", {"days": 30})

    assert response.status_code == 400
    assert "audience_text" in field_errors(response)


def test_simulation_honours_the_audience_and_leaves_out_unsubscribed_contacts(api, tenant, stages, customer):
    ContactFactory(account=customer, email="una@acme.example", role=ContactRole.USER, unsubscribed=True)
    enter_onboarding(tenant, customer)
    body = onboarding_body(audience_text='contact.role == "user"')
    report = simulated(api, "/api/v1/playbooks/simulate/", body).json()
    email = report["runs"][0]["steps"][0]
    assert (email["to"], email["unsubscribed"]) == (["uma@acme.example"], ["una@acme.example"])
    assert report["emails"] == 1


def test_simulation_reads_contacts_in_one_query_whatever_the_number_of_accounts(tenant, stages, customer):
    playbook_templates_install(tenant=tenant, keys=["onboarding_welcome"], enabled=False)
    playbook = Playbook.objects.for_tenant(tenant).get()
    enter_onboarding(tenant, customer)

    def queries():
        with CaptureQueriesContext(connection) as captured:
            report = simulate(tenant=tenant, playbook=playbook, days=30, now=WEDNESDAY_NOON)
        return report["enrolled"], len(captured.captured_queries)

    one = queries()
    more = [AccountFactory(tenant=tenant) for _ in range(3)]
    for account in more:
        ContactFactory(account=account, role=ContactRole.ADMINISTRATOR)
    enter_onboarding(tenant, *more)
    assert queries() == (4, one[1])


def test_editing_steps_keeps_history_and_moves_pending_steps_to_the_new_definition(api, stages, customer, smtp_server):
    api.post("/api/v1/playbooks/", playbook_body(), format="json")
    with time_machine.travel(WEDNESDAY_NOON, tick=False):
        api.post("/api/v1/playbooks/renewal_nudge/start/", {"account": customer.pk}, format="json")
        steps_run_due()
    new_steps = playbook_body()["steps"]
    new_steps[1]["config"]["title"] = "Phone {{ account.name }}"
    response = api.patch("/api/v1/playbooks/renewal_nudge/", {"steps": new_steps}, format="json")
    assert response.status_code == 200, response.json()
    with time_machine.travel(WEDNESDAY_NOON + dt.timedelta(hours=2), tick=False):
        steps_run_due()
    assert Task.objects.for_tenant(customer.tenant).get().title == "Phone Acme Rockets"
    run = api.get("/api/v1/playbook-runs/").json()["results"][0]
    assert [step["status"] for step in run["steps"]] == ["done", "done"]


def test_an_open_task_is_rescheduled_or_left_without_a_date_and_a_done_one_is_refused(api, tenant, bob):
    account = AccountFactory(tenant=tenant, owner=bob)
    task = Task.objects.create(tenant=tenant, account=account, owner=bob, title="Call the champion")
    url = f"/api/v1/tasks/{task.pk}/reschedule/"

    moved = api.post(url, {"due_at": "2027-01-15T09:30:00+01:00"}, format="json")
    cleared = api.post(url, {"due_at": None}, format="json")
    malformed = api.post(url, {"due_at": "next tuesday"}, format="json")
    api.post(f"/api/v1/tasks/{task.pk}/complete/")
    done = api.post(url, {"due_at": "2027-02-01T09:00:00Z"}, format="json")

    assert moved.status_code == 200 and moved.json()["due_at"].startswith("2027-01-15T08:30:00")
    assert moved.json()["owner"] == bob.email
    assert cleared.json()["due_at"] is None
    assert malformed.status_code == 400 and malformed.json()["error"]["fields"][0]["field"] == "due_at"
    assert done.status_code == 400 and "a done task keeps its owner and date" in done.content.decode()
    assert Task.objects.for_tenant(tenant).get(pk=task.pk).due_at is None


def test_a_simulated_date_trigger_leaves_out_customers_who_had_left_by_then(api, tenant, stages, alice):
    fired = WEDNESDAY_NOON - dt.timedelta(days=5)
    renews = fired.date() + dt.timedelta(days=30)
    names = ("Gone Before", "Gone After", "Staying")
    gone_before, gone_after, _ = (AccountFactory(tenant=tenant, name=name, renewal_date=renews) for name in names)
    for account, left in ((gone_before, fired - dt.timedelta(days=2)), (gone_after, fired + dt.timedelta(days=2))):
        with time_machine.travel(left, tick=False):
            account_move_stage(tenant=tenant, account=account, to_stage=stages["churned"], actor=alice,
                               reason="Budget cut")
    body = playbook_body(trigger_type="date_relative", trigger_config={"field": "renewal_date", "days_before": 30},
                         days=30)

    report = simulated(api, "/api/v1/playbooks/simulate/", body).json()

    assert sorted(run["account"]["name"] for run in report["runs"]) == ["Gone After", "Staying"]
