import pytest

from csplatform.customers.models import ContactRole
from csplatform.tenancy.models import AuditLogEntry
from lifecycle.services import account_move_stage, stages_apply_template
from playbooks.models import Playbook
from playbooks.services import playbook_create, playbook_steps

from ..factories import AccountFactory, ContactFactory
from .conftest import page

pytestmark = pytest.mark.django_db
URL = "/t/alpha/settings/playbooks/"


@pytest.fixture
def stages(tenant, alice):
    return {
        stage.key: stage
        for stage in stages_apply_template(tenant=tenant, template_key="onboarding_to_renewal", actor=alice)
    }


@pytest.fixture
def customer(tenant, bob):
    account = AccountFactory(tenant=tenant, name="Acme Rockets", owner=bob, plan="pro")
    ContactFactory(tenant=tenant, account=account, name="Uma User", email="uma@acme.example", role=ContactRole.USER)
    ContactFactory(tenant=tenant, account=account, name="Ada Admin", email="ada@acme.example", role=ContactRole.ADMINISTRATOR)
    return account


@pytest.fixture
def welcome(tenant, alice, stages):
    return playbook_create(
        tenant=tenant,
        actor=alice,
        key="welcome",
        name="Welcome",
        trigger_type="stage_entered",
        trigger_config={"stage": "onboarding"},
        steps=[
            {"kind": "send_email", "delay_minutes": 0, "config": {"subject": "Hi {{ contact.first_name }}", "text": "Welcome, {{ account.name }}."}},
            {"kind": "create_task", "delay_minutes": 2 * 24 * 60, "config": {"title": "Call {{ account.name }}"}},
        ],
    )


def playbook_data(**overrides):
    """A posted editor: one email step, then one task step."""
    data = {
        "key": "welcome_new", "name": "Welcome new customers", "description": "", "trigger_type": "stage_entered",
        "trigger_stage": "onboarding", "enrollment_policy": "once", "audience_text": "", "exit_criteria_text": "",
        "step-0-kind": "send_email", "step-0-delay": "0", "step-0-unit": "days",
        "step-0-subject": "Welcome, {{ contact.first_name }}", "step-0-text": "Hello from {{ owner.name }}.",
        "step-0-html": "", "step-0-quiet_hours": "1",
        "step-1-kind": "create_task", "step-1-delay": "3", "step-1-unit": "days",
        "step-1-title": "Check in with {{ account.name }}", "step-1-description": "", "step-1-due_in_days": "2",
        "action": "save",
    }
    return data | overrides


def test_a_csm_cannot_see_or_change_playbooks(client, bob, welcome):
    client.force_login(bob)
    assert client.get(URL).status_code == 403
    assert client.post(f"{URL}{welcome.pk}/toggle/", {"enabled": "1"}).status_code == 403
    welcome.refresh_from_db()
    assert welcome.enabled is False


def test_another_tenants_playbook_answers_404(client, charlie, welcome):
    client.force_login(charlie)
    assert client.get(f"/t/beta/settings/playbooks/{welcome.pk}/").status_code == 404
    assert client.get(f"/t/beta/settings/playbooks/{welcome.pk}/simulate/").status_code == 404
    assert client.get(f"{URL}{welcome.pk}/").status_code == 404


def test_the_list_shows_state_and_run_counts(admin_client, welcome, customer, alice, tenant, stages):
    from playbooks.services import run_start

    run_start(tenant=tenant, playbook=welcome, account=customer, actor=alice)
    html = page(admin_client.get(URL))
    assert "Welcome" in html and "Disabled" in html
    assert '<td class="num">2</td>\n            <td class="num">1</td>\n            <td class="num">1</td>' in html


def test_creating_a_playbook_with_steps_is_audited(admin_client, tenant, alice, stages):
    response = admin_client.post(f"{URL}new/", playbook_data())
    assert response.status_code == 302
    playbook = Playbook.objects.for_tenant(tenant).get(key="welcome_new")
    steps = playbook_steps(tenant, playbook)
    assert [(s.kind, s.delay_minutes) for s in steps] == [("send_email", 0), ("create_task", 3 * 24 * 60)]
    assert steps[1].config["title"] == "Check in with {{ account.name }}" and steps[1].config["due_in_days"] == 2
    assert playbook.trigger_config == {"stage": "onboarding"} and playbook.enabled is False
    assert AuditLogEntry.objects.for_tenant(tenant).get(action="playbook.created").actor == alice


def test_step_errors_are_shown_on_the_step_and_nothing_typed_is_lost(admin_client, tenant, stages):
    data = playbook_data(**{"step-0-subject": "Hi {% if %}", "step-1-due_in_days": "soon", "step-1-delay": "4"})
    response = admin_client.post(f"{URL}new/", data)
    assert response.status_code == 200
    html = page(response)
    assert "The template does not render" in html
    assert "Give a whole number from 0 to 365." in html
    assert 'value="Hi {% if %}"' in html and 'value="soon"' in html and 'value="4"' in html
    assert 'value="Welcome new customers"' in html
    assert not Playbook.objects.for_tenant(tenant).exists()


def test_an_unknown_trigger_stage_is_shown_on_the_trigger(admin_client, tenant, stages):
    html = page(admin_client.post(f"{URL}new/", playbook_data(trigger_stage="")))
    assert "Name one of the tenant&#x27;s stage keys" in html
    assert not Playbook.objects.for_tenant(tenant).exists()


def test_a_bad_exit_criteria_is_shown_with_its_position(admin_client, stages):
    html = page(admin_client.post(f"{URL}new/", playbook_data(exit_criteria_text="account.mrr >")))
    assert "The criteria do not parse" in html and "Line 1, column" in html


def test_the_step_buttons_add_move_and_remove_without_saving(admin_client, tenant, stages):
    html = page(admin_client.post(f"{URL}new/", playbook_data(action="add", new_step_kind="usage_check")))
    assert 'name="step-2-criteria"' in html and 'value="Welcome new customers"' in html
    html = page(admin_client.post(f"{URL}new/", playbook_data(action="up:1")))
    assert html.index('value="Check in with {{ account.name }}"') < html.index('value="Welcome, {{ contact.first_name }}"')
    assert 'name="step-0-title"' in html
    html = page(admin_client.post(f"{URL}new/", playbook_data(action="remove:0")))
    assert 'name="step-0-title"' in html and 'name="step-1-kind"' not in html
    only_step = {key: value for key, value in playbook_data(action="remove:0").items() if not key.startswith("step-1-")}
    assert "No steps yet" in page(admin_client.post(f"{URL}new/", only_step))
    assert not Playbook.objects.for_tenant(tenant).exists()


def test_editing_reorders_the_saved_steps(admin_client, tenant, welcome):
    html = page(admin_client.get(f"{URL}{welcome.pk}/"))
    assert 'value="Hi {{ contact.first_name }}"' in html
    assert '<option value="days" selected>' in html
    data = playbook_data(
        key="ignored", name="Welcome", **{"step-0-kind": "create_task", "step-0-title": "First call", "step-1-kind": "send_email",
        "step-1-subject": "Later", "step-1-text": "Later text"},
    )
    assert admin_client.post(f"{URL}{welcome.pk}/", data).status_code == 302
    welcome.refresh_from_db()
    assert welcome.key == "welcome"
    assert [s.kind for s in playbook_steps(tenant, welcome)] == ["create_task", "send_email"]
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="playbook.updated").exists()


def test_the_email_preview_renders_for_a_real_account_and_contact(admin_client, welcome, customer):
    data = playbook_data(name="Welcome", action="preview:0", account=str(customer.pk))
    data["step-0-html"] = '<p>Hi {{ contact.first_name }}" <script>alert(1)</script></p>'
    data["step-0-text"] = "Hello from {{ owner.name }} <b>"
    html = page(admin_client.post(f"{URL}{welcome.pk}/", data))
    assert "Preview for Acme Rockets, to ada@acme.example" in html
    assert "<strong>Subject:</strong> Welcome, Ada" in html
    # Rendered templates are data: escaped into the page, the HTML body only inside a sandboxed frame.
    assert 'sandbox srcdoc="&lt;p&gt;Hi Ada&quot; &lt;script&gt;' in html
    assert "Hello from Bob" in html and "&lt;b&gt;" in html and "<script>alert" not in html


def test_a_template_error_is_shown_in_the_preview(admin_client, welcome, customer):
    data = playbook_data(name="Welcome", action="preview:0", account=str(customer.pk), **{"step-0-text": "{{ account.name|nosuchfilter }}"})
    assert "The template does not render" in page(admin_client.post(f"{URL}{welcome.pk}/", data))


def test_enabling_and_disabling_is_audited(admin_client, tenant, welcome):
    admin_client.post(f"{URL}{welcome.pk}/toggle/", {"enabled": "1"})
    welcome.refresh_from_db()
    assert welcome.enabled is True
    admin_client.post(f"{URL}{welcome.pk}/toggle/", {"enabled": "0"})
    welcome.refresh_from_db()
    assert welcome.enabled is False
    actions = list(AuditLogEntry.objects.for_tenant(tenant).filter(object_id=str(welcome.pk)).values_list("action", flat=True))
    assert "playbook.enabled" in actions and "playbook.disabled" in actions


def test_the_simulation_lists_who_would_be_enrolled_and_what_they_get(admin_client, tenant, alice, welcome, customer, stages):
    account_move_stage(tenant=tenant, account=customer, to_stage=stages["onboarding"], actor=alice, reason="Signed.")
    html = page(admin_client.get(f"{URL}{welcome.pk}/simulate/"))
    assert "<strong>1</strong> account would have been enrolled" in html
    assert "Acme Rockets" in html and "to ada@acme.example" in html and "Hi Ada" in html
    assert "create_task</code>: Call {{ account.name }}" in html


def test_installing_from_the_library_creates_it_disabled(admin_client, tenant, alice, stages):
    assert "Onboarding: welcome, demo, usage check" in page(admin_client.get(URL))
    response = admin_client.post(f"{URL}library/onboarding_welcome/")
    playbook = Playbook.objects.for_tenant(tenant).get(key="onboarding_welcome")
    assert response.status_code == 302 and response.url == f"{URL}{playbook.pk}/"
    assert playbook.enabled is False and len(playbook_steps(tenant, playbook)) == 3
    assert AuditLogEntry.objects.for_tenant(tenant).get(action="playbook.created").actor == alice


def test_installing_without_the_stage_it_needs_says_why(admin_client, tenant):
    html = page(admin_client.post(f"{URL}library/onboarding_welcome/"))
    assert "stage keys" in html
    assert not Playbook.objects.for_tenant(tenant).exists()
    assert admin_client.get(f"{URL}library/no_such/").status_code == 404


def test_an_admin_gets_the_empty_editor_with_every_step_kind_to_add(admin_client, stages):
    html = page(admin_client.get(f"{URL}new/"))
    assert "No steps yet" in html
    assert '<option value="usage_check">Check usage</option>' in html
    assert '<option value="onboarding">Onboarding</option>' in html


def test_the_check_button_shows_audience_matches_without_saving(admin_client, tenant, customer, stages):
    data = playbook_data(action="check", audience_text='contact.role == "administrator"')
    html = page(admin_client.post(f"{URL}new/", data))
    assert "1 of 2 contacts match" in html and "Ada Admin" in html
    assert not Playbook.objects.for_tenant(tenant).exists()
