import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from csplatform.tenancy.models import AuditLogEntry
from csplatform.tenancy.timezones import tenant_today
from lifecycle.api.views import PREVIEW_SAMPLE_SIZE
from lifecycle.models import AccountStage, Stage
from lifecycle.services import account_move_stage, lifecycle_advance, stage_create
from tests.conftest import make_api_client
from tests.factories import AccountFactory

STAGES = "/api/v1/stages/"


def error_fields(response):
    return {item["field"] for item in response.json()["error"].get("fields", [])}


def test_create_a_stage_with_criteria_and_read_it_back(api, tenant, lifecycle_stages):
    response = api.post(
        STAGES,
        {
            "key": "champion",
            "name": "Champion",
            "colour": "#ff8800",
            "entry_criteria_text": "account.mrr >= 5000",
            "expected_days": 30,
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = api.get(f"{STAGES}champion/").json()
    assert body["name"] == "Champion"
    assert body["entry_criteria"] is not None
    assert body["position"] == 6
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="stage.created", object_repr="Champion").exists()


def test_invalid_criteria_text_answers_400_pointing_at_the_error(api, lifecycle_stages):
    response = api.post(STAGES, {"key": "x", "name": "X", "entry_criteria_text": "account.mrr >= "}, format="json")

    assert response.status_code == 400
    assert error_fields(response) == {"entry_criteria_text"}
    assert "column" in response.json()["error"]["message"]


def test_a_duplicate_key_answers_400(api, lifecycle_stages):
    response = api.post(STAGES, {"key": "trial", "name": "Trial again"}, format="json")

    assert response.status_code == 400
    assert error_fields(response) == {"key"}


def test_update_a_stage_and_the_change_is_audited(api, tenant, lifecycle_stages):
    response = api.patch(f"{STAGES}paying/", {"expected_days": 45, "cycle_to": "trial"}, format="json")

    assert response.status_code == 200, response.json()
    assert (response.json()["expected_days"], response.json()["cycle_to"]) == (45, "trial")
    entry = AuditLogEntry.objects.for_tenant(tenant).get(action="stage.updated")
    assert (entry.before["expected_days"], entry.after["expected_days"]) == (30, 45)


def test_a_stage_entered_from_any_earlier_is_set_and_read_through_the_api(api, tenant, lifecycle_stages):
    response = api.patch(f"{STAGES}won_back/", {"entered_from_any_earlier": True}, format="json")

    assert response.status_code == 200, response.json()
    assert api.get(f"{STAGES}won_back/").json()["entered_from_any_earlier"] is True
    assert api.get(f"{STAGES}paying/").json()["entered_from_any_earlier"] is False
    entry = AuditLogEntry.objects.for_tenant(tenant).get(action="stage.updated")
    assert (entry.before["entered_from_any_earlier"], entry.after["entered_from_any_earlier"]) == (False, True)


def test_cycle_to_naming_another_tenants_stage_answers_400(api, other_tenant, charlie, lifecycle_stages):
    stage_create(tenant=other_tenant, actor=charlie, key="elsewhere", name="Elsewhere")

    response = api.patch(f"{STAGES}paying/", {"cycle_to": "elsewhere"}, format="json")

    assert response.status_code == 400
    assert error_fields(response) == {"cycle_to"}


def test_deleting_a_stage_that_holds_accounts_needs_move_to(api, tenant, lifecycle_stages):
    account = AccountFactory(tenant=tenant, mrr=10)
    lifecycle_advance(tenant=tenant, account_ids=[account.pk])

    refused = api.delete(f"{STAGES}paying/")
    unknown = api.delete(f"{STAGES}paying/?move_to=nowhere")
    deleted = api.delete(f"{STAGES}paying/?move_to=trial")

    assert refused.status_code == 400 and error_fields(refused) == {"move_to"}
    assert unknown.status_code == 400
    assert deleted.status_code == 204
    assert AccountStage.objects.for_tenant(tenant).get(account=account).stage.key == "trial"
    assert not Stage.objects.for_tenant(tenant).filter(key="paying").exists()
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="stage.deleted").exists()


def test_reorder_stages(api, tenant, lifecycle_stages):
    keys = ["trial", "growing", "paying", "won_back", "lost"]

    response = api.post(f"{STAGES}reorder/", keys, format="json")

    assert response.status_code == 200
    assert [stage["key"] for stage in api.get(STAGES).json()] == keys


def test_reorder_must_name_every_stage_once(api, lifecycle_stages):
    response = api.post(f"{STAGES}reorder/", {"keys": ["trial", "paying"]}, format="json")

    assert response.status_code == 400
    assert "missing growing, lost, won_back" in response.json()["error"]["message"]


def test_list_templates_and_apply_one(api, tenant):
    templates = api.get("/api/v1/stage-templates/").json()
    response = api.post(f"{STAGES}apply-template/", {"template": "eight_stages"}, format="json")

    assert {t["key"] for t in templates} >= {"success_lifecycle", "renewal_cycle", "eight_stages"}
    assert response.status_code == 200
    assert [stage["key"] for stage in response.json()][:3] == ["outreach", "connection", "conversion"]
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="stages.template_applied").exists()


def test_applying_a_template_over_occupied_stages_without_mapping_answers_400(api, tenant, lifecycle_stages):
    account = AccountFactory(tenant=tenant, mrr=0)
    lifecycle_advance(tenant=tenant, account_ids=[account.pk])

    response = api.post(f"{STAGES}apply-template/", {"template": "eight_stages"}, format="json")
    mapped = api.post(
        f"{STAGES}apply-template/", {"template": "eight_stages", "mapping": {"trial": "outreach"}}, format="json"
    )

    assert response.status_code == 400 and error_fields(response) == {"mapping"}
    assert mapped.status_code == 200


def test_move_an_account_by_hand_through_the_api(api, tenant, lifecycle_stages):
    account = AccountFactory(tenant=tenant, mrr=0)

    response = api.post(
        f"/api/v1/accounts/{account.pk}/move-stage/", {"stage": "growing", "reason": "Big deal"}, format="json"
    )

    assert response.status_code == 201, response.json()
    assert (response.json()["to_key"], response.json()["reason"]) == ("growing", "Big deal")
    assert AccountStage.objects.for_tenant(tenant).get(account=account).stage.key == "growing"


def test_move_stage_needs_a_reason_and_a_known_stage(api, tenant, lifecycle_stages):
    account = AccountFactory(tenant=tenant)
    url = f"/api/v1/accounts/{account.pk}/move-stage/"

    assert error_fields(api.post(url, {"stage": "growing"}, format="json")) == {"reason"}
    assert error_fields(api.post(url, {"stage": "nowhere", "reason": "x"}, format="json")) == {"stage"}


def test_another_tenants_account_answers_404_and_its_stage_key_400(
    api, other_api, tenant, other_tenant, charlie, lifecycle_stages
):
    outsider = AccountFactory(tenant=other_tenant)
    stage_create(tenant=other_tenant, actor=charlie, key="theirs", name="Theirs")
    mine = AccountFactory(tenant=tenant)

    assert (
        api.post(
            f"/api/v1/accounts/{outsider.pk}/move-stage/", {"stage": "growing", "reason": "x"}, format="json"
        ).status_code
        == 404
    )
    assert api.post(f"/api/v1/accounts/{outsider.pk}/renew/", {}, format="json").status_code == 404
    assert (
        api.post(
            f"/api/v1/accounts/{mine.pk}/move-stage/", {"stage": "theirs", "reason": "x"}, format="json"
        ).status_code
        == 400
    )
    assert other_api.get(f"{STAGES}trial/").status_code == 404
    assert other_api.delete(f"{STAGES}trial/").status_code == 404
    assert other_api.patch(f"{STAGES}trial/", {"name": "Mine"}, format="json").status_code == 404


def test_renew_through_the_api(api, tenant, alice):
    api.post(f"{STAGES}apply-template/", {"template": "renewal_cycle"}, format="json")
    account = AccountFactory(tenant=tenant)
    api.post(f"/api/v1/accounts/{account.pk}/move-stage/", {"stage": "renewal", "reason": "Due"}, format="json")

    response = api.post(f"/api/v1/accounts/{account.pk}/renew/", {}, format="json")
    again = api.post(f"/api/v1/accounts/{account.pk}/renew/", {}, format="json")

    assert response.status_code == 201
    assert (response.json()["kind"], response.json()["to_key"]) == ("cycle", "engagement")
    assert again.status_code == 400


def test_transitions_filter_by_account_stage_and_since_with_cursor_pages(api, other_api, tenant, lifecycle_stages):
    accounts = [AccountFactory(tenant=tenant, mrr=mrr) for mrr in (0, 10, 2000)]
    lifecycle_advance(tenant=tenant, account_ids=[a.pk for a in accounts])

    everything = api.get("/api/v1/transitions/?page_size=2")
    second_page = api.get(everything.json()["next"])
    into_paying = api.get("/api/v1/transitions/?stage=paying").json()["results"]
    of_first = api.get(f"/api/v1/transitions/?account={accounts[0].pk}").json()["results"]
    future = api.get(
        "/api/v1/transitions/", {"since": (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()}
    )

    assert len(everything.json()["results"]) == 2 and len(second_page.json()["results"]) == 2
    assert {t["account"] for t in into_paying} == {accounts[1].pk, accounts[2].pk}
    assert [t["to_key"] for t in of_first] == ["trial"]
    assert future.json()["results"] == []
    assert other_api.get("/api/v1/transitions/").json()["results"] == []


def test_validate_criteria_reports_where_the_error_is(api, lifecycle_stages):
    valid = api.post("/api/v1/criteria/validate/", {"text": 'stage == "trial"'}, format="json").json()
    unknown = api.post(
        "/api/v1/criteria/validate/", {"text": "metric.nope_x >= 1", "subject": "account"}, format="json"
    ).json()
    bad_subject = api.post("/api/v1/criteria/validate/", {"text": "x", "subject": "planet"}, format="json")

    assert valid["valid"] is True and valid["error"] is None
    assert unknown["valid"] is False
    assert unknown["error"]["field"] == "metric.nope_x"
    assert (unknown["error"]["line"], unknown["error"]["column"]) == (1, 1)
    assert bad_subject.status_code == 400 and error_fields(bad_subject) == {"subject"}


def test_preview_counts_matching_accounts_with_explanations(api, tenant, other_tenant):
    AccountFactory(tenant=tenant, name="Big", mrr=2000)
    AccountFactory(tenant=tenant, name="Small", mrr=10)
    AccountFactory(tenant=other_tenant, name="Outsider", mrr=5000)

    body = api.post("/api/v1/criteria/preview/", {"text": "account.mrr >= 1000"}, format="json").json()
    bad = api.post("/api/v1/criteria/preview/", {"text": "account.mrr >="}, format="json")

    assert body["count"] == 1
    assert [(row["name"], row["explanation"]["passed"]) for row in body["sample"]] == [("Big", True)]
    assert bad.status_code == 400 and error_fields(bad) == {"text"}


def test_preview_explains_its_sample_in_the_same_number_of_queries_however_many_accounts_match(api, tenant, alice):
    text = 'metric.events_7d >= 0 or health.score >= 0 or account.owner exists or stage == "trial" or account.mrr >= 0'

    def queries_for(count):
        AccountFactory.create_batch(count, tenant=tenant, owner=alice)
        # The first request of a key also records when the key was last used.
        api.post("/api/v1/criteria/preview/", {"text": text}, format="json")
        with CaptureQueriesContext(connection) as queries:
            body = api.post("/api/v1/criteria/preview/", {"text": text}, format="json").json()
        assert len(body["sample"]) == min(body["count"], PREVIEW_SAMPLE_SIZE)
        return len(queries)

    assert queries_for(1) == queries_for(12)


def test_kpis_endpoint(api, tenant, lifecycle_stages):
    account = AccountFactory(tenant=tenant, mrr=10)
    lifecycle_advance(tenant=tenant, account_ids=[account.pk])

    body = api.get("/api/v1/lifecycle/kpis/").json()

    assert {row["stage"]: row["accounts"] for row in body["accounts_per_stage"]}["paying"] == 1
    assert body["conversion"][0] == {
        "from_stage": "trial",
        "to_stage": "paying",
        "entered": 1,
        "converted": 1,
        "rate": 1.0,
    }


def test_the_kpis_tell_who_left_each_month_and_why(api, tenant, lifecycle_stages, alice):
    staying, leaving = AccountFactory(tenant=tenant, mrr=10), AccountFactory(tenant=tenant, mrr=250)
    with time_machine.travel(timezone.now() - dt.timedelta(days=40)):
        lifecycle_advance(tenant=tenant, account_ids=[staying.pk, leaving.pk])
    account_move_stage(tenant=tenant, account=leaving, to_stage=lifecycle_stages["lost"], actor=alice,
                       reason="Chose a competitor")

    departures = api.get("/api/v1/lifecycle/kpis/").json()["departures"]

    this_month = departures["months"][-1]
    assert this_month == {"month": tenant_today(tenant).replace(day=1).isoformat(), "left": 1,
                          "in_lifecycle_at_start": 2, "churn_rate": 50.0, "mrr_lost": 250.0}
    assert departures["reasons"] == [{"reason": "Chose a competitor", "left": 1, "mrr_lost": 250.0}]


@pytest.mark.parametrize("method", ["post", "patch", "delete"])
def test_a_read_only_key_cannot_change_stages(tenant, lifecycle_stages, method):
    reader = make_api_client(tenant, scopes=["read"])

    response = getattr(reader, method)(f"{STAGES}trial/" if method != "post" else STAGES, {}, format="json")

    assert response.status_code == 403
