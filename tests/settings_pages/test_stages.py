import re

import pytest

from csplatform.tenancy.models import AuditLogEntry
from lifecycle.models import AccountStage, Stage
from lifecycle.services import lifecycle_advance, stage_create

from ..factories import AccountFactory
from .conftest import page

pytestmark = pytest.mark.django_db
URL = "/t/alpha/settings/stages/"


@pytest.fixture
def stages(tenant, alice):
    return [
        stage_create(tenant=tenant, actor=alice, key="trial", name="Trial"),
        stage_create(tenant=tenant, actor=alice, key="paying", name="Paying", entry_criteria_text="account.mrr > 0"),
        stage_create(tenant=tenant, actor=alice, key="big", name="Big", entry_criteria_text="account.mrr >= 1000"),
    ]


def keys(tenant):
    return list(Stage.objects.for_tenant(tenant).order_by("position").values_list("key", flat=True))


def stage_data(**overrides):
    data = {"key": "adoption", "name": "Adoption", "colour": "#3b82f6", "entry_criteria_text": "", "description": ""}
    return data | overrides


def test_without_stages_the_page_says_to_start_from_a_template(admin_client):
    html = page(admin_client.get(URL))
    assert "No stages yet" in html
    assert "/t/alpha/settings/stages/templates/success_lifecycle/" in html


def test_creating_a_stage_with_criteria_saves_it_and_records_who_did_it(admin_client, tenant, alice, stages):
    data = stage_data(entry_criteria_text='account.mrr >= 10 and account.plan in ["pro"]', expected_days="20")
    response = admin_client.post(f"{URL}new/", data)
    assert response.status_code == 302
    stage = Stage.objects.for_tenant(tenant).get(key="adoption")
    assert stage.entry_criteria_text == 'account.mrr >= 10 and account.plan in ["pro"]'
    assert stage.expected_days == 20
    entry = AuditLogEntry.objects.for_tenant(tenant).get(action="stage.created", object_id=str(stage.pk))
    assert entry.actor == alice and entry.after["key"] == "adoption"


def test_a_criteria_syntax_error_points_at_line_and_column_and_keeps_what_was_typed(admin_client, tenant, stages):
    data = stage_data(name="Adoption stage", entry_criteria_text="account.mrr >=\n  and account.plan", expected_days="12")
    response = admin_client.post(f"{URL}new/", data)
    assert response.status_code == 200
    html = page(response)
    assert "Line 2, column 3:" in html
    assert 'value="Adoption stage"' in html and 'value="12"' in html
    assert "account.mrr &gt;=\n  and account.plan</textarea>" in html
    assert not Stage.objects.for_tenant(tenant).filter(key="adoption").exists()


def test_an_unknown_field_is_named_in_the_error(admin_client, stages):
    html = page(admin_client.post(f"{URL}new/", stage_data(entry_criteria_text="metric.no_such_thing > 3")))
    assert "Field: <code>metric.no_such_thing</code>" in html


def test_the_live_check_answers_with_the_error_position(admin_client, stages):
    response = admin_client.post("/t/alpha/settings/criteria/check/", {"entry_criteria_text": 'account.plan == "pro" and'})
    assert response.status_code == 200
    html = page(response)
    assert 'role="alert"' in html and "Line 1, column" in html
    assert "<html" not in html


def test_the_live_check_previews_matching_accounts_with_why(admin_client, tenant, stages):
    AccountFactory(tenant=tenant, name="Zeta Big", mrr=5000)
    AccountFactory(tenant=tenant, name="Alpha Big", mrr=2000)
    AccountFactory(tenant=tenant, name="Small Co", mrr=10)
    html = page(admin_client.post("/t/alpha/settings/criteria/check/", {"entry_criteria_text": "account.mrr >= 1000"}))
    assert "2 of 3 accounts match" in html
    assert html.index("Alpha Big") < html.index("Zeta Big")
    assert "Small Co" not in html
    assert "<code>account.mrr</code> is 2000 (needs &gt;= 1000): passed" in html


def test_the_check_button_without_script_shows_the_preview_and_saves_nothing(admin_client, tenant, stages):
    AccountFactory(tenant=tenant, name="Only One", mrr=5)
    data = stage_data(entry_criteria_text="account.mrr > 1", action="check")
    html = page(admin_client.post(f"{URL}new/", data))
    assert "1 of 1 account matches" in html and "Only One" in html
    assert not Stage.objects.for_tenant(tenant).filter(key="adoption").exists()


def test_editing_keeps_the_key_and_saves_the_rest(admin_client, tenant, stages):
    paying = stages[1]
    data = stage_data(key="renamed", name="Paying customers", entry_criteria_text="account.mrr > 50")
    assert admin_client.post(f"{URL}{paying.pk}/", data).status_code == 302
    paying.refresh_from_db()
    assert (paying.key, paying.name, paying.entry_criteria_text) == ("paying", "Paying customers", "account.mrr > 50")


def test_a_stage_can_be_entered_from_any_earlier_stage_and_the_list_says_so(admin_client, tenant, stages):
    big = stages[2]
    data = stage_data(key="big", name="Big", entry_criteria_text="account.mrr >= 1000", entered_from_any_earlier="on")
    assert admin_client.post(f"{URL}{big.pk}/", data).status_code == 302

    big.refresh_from_db()
    assert big.entered_from_any_earlier
    assert "from any earlier stage" in page(admin_client.get(URL))
    assert re.search(r'<input type="checkbox" name="entered_from_any_earlier"[^>]* checked', page(
        admin_client.get(f"{URL}{big.pk}/")
    ))


def test_the_initial_stage_cannot_be_unset_without_naming_another(admin_client, stages):
    html = page(admin_client.post(f"{URL}{stages[0].pk}/", stage_data(key="trial", name="Trial")))
    assert "Make another stage the initial stage instead." in html


def test_up_and_down_buttons_reorder_and_are_audited(admin_client, tenant, stages):
    admin_client.post(f"{URL}reorder/", {"move": "big:up", "order": ["trial", "paying", "big"]})
    assert keys(tenant) == ["trial", "big", "paying"]
    admin_client.post(f"{URL}reorder/", {"move": "trial:down"})
    assert keys(tenant) == ["big", "trial", "paying"]
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="stages.reordered").count() == 2


def test_a_dragged_order_is_saved_whole(admin_client, tenant, stages):
    admin_client.post(f"{URL}reorder/", {"order": ["big", "paying", "trial"]})
    assert keys(tenant) == ["big", "paying", "trial"]


def test_an_incomplete_order_is_refused_with_a_message(admin_client, tenant, stages):
    response = admin_client.post(f"{URL}reorder/", {"order": ["big", "trial"]}, follow=True)
    assert "missing paying" in page(response)
    assert keys(tenant) == ["trial", "paying", "big"]


def test_deleting_a_stage_that_holds_accounts_asks_where_they_go(admin_client, tenant, stages):
    account = AccountFactory(tenant=tenant, mrr=5)
    lifecycle_advance(tenant=tenant, account_ids=[account.pk])
    paying, big = stages[1], stages[2]
    delete_url = f"{URL}{paying.pk}/delete/"
    assert "1 account is in Paying" in page(admin_client.get(delete_url))
    assert "name the stage to move them to" in page(admin_client.post(delete_url, {"move_to": ""}))
    assert admin_client.post(delete_url, {"move_to": big.pk}).status_code == 302
    assert AccountStage.objects.for_tenant(tenant).get(account=account).stage == big
    assert not Stage.objects.for_tenant(tenant).filter(key="paying").exists()


def test_applying_a_template_maps_occupied_stages(admin_client, tenant, stages):
    account = AccountFactory(tenant=tenant, mrr=5000)
    lifecycle_advance(tenant=tenant, account_ids=[account.pk])
    url = f"{URL}templates/success_lifecycle/"
    html = page(admin_client.get(url))
    assert "Big (1 account) moves to" in html
    html = page(admin_client.post(url, {}))
    assert "This field is required." in html
    assert admin_client.post(url, {"map_big": "adoption"}).status_code == 302
    assert AccountStage.objects.for_tenant(tenant).get(account=account).stage.key == "adoption"
    assert "onboarding" in keys(tenant) and "big" not in keys(tenant)
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="stages.template_applied").exists()
