import datetime as dt

import pytest

from csplatform.rules.models import MetricDefinition
from csplatform.tenancy.models import AuditLogEntry
from csplatform.tenancy.timezones import tenant_today
from health.models import HealthScore, Scorecard
from health.services import health_score

from ..conftest import make_api_client
from .conftest import make_account, make_stage, set_metrics, thresholds

pytestmark = pytest.mark.django_db

SCORECARDS = "/api/v1/health/scorecards/"


def fields_of(response):
    return {item["field"] for item in response.json()["error"]["fields"]}


def test_create_a_scorecard_publishes_version_one_and_is_audited(api, tenant, logins_metric):
    stage = make_stage(tenant, "onboarding")
    response = api.post(
        SCORECARDS,
        {"name": "Onboarding", "stage": "onboarding", "measures": [thresholds("logins_30d", 0, 20, weight=2)]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["stage"] == stage.key
    assert body["published_version"]["number"] == 1
    assert body["published_version"]["measures"][0]["label"] == "Logins in the last 30 days"
    actions = set(AuditLogEntry.objects.for_tenant(tenant).values_list("action", flat=True))
    assert {"scorecard.created", "scorecard.published"} <= actions


def test_invalid_measures_answer_400_with_field_paths(api, tenant):
    response = api.post(
        SCORECARDS,
        {
            "name": "Broken",
            "measures": [
                thresholds("events_30d", 10, 5, weight=-1),
                {"source": "logins_30d", "mapping": {"type": "bands", "bands": [[10, 0], [5, 50]]}},
            ],
        },
        format="json",
    )
    assert response.status_code == 400
    assert fields_of(response) == {
        "measures[0].weight", "measures[0].mapping.good", "measures[1].source", "measures[1].mapping.bands[1]",
    }
    assert not Scorecard.objects.for_tenant(tenant).exists()


def test_another_tenants_metric_is_not_a_known_source(api, other_tenant):
    MetricDefinition.objects.create(tenant=other_tenant, key="logins_30d", label="Logins", event_names=["login"])
    response = api.post(SCORECARDS, {"name": "X", "measures": [thresholds("logins_30d", 0, 5)]}, format="json")
    assert response.status_code == 400 and fields_of(response) == {"measures[0].source"}


def test_one_scorecard_per_stage_and_one_default(api, default_card):
    response = api.post(SCORECARDS, {"name": "Second default", "measures": [thresholds("events_30d", 0, 5)]}, format="json")
    assert response.status_code == 400 and fields_of(response) == {"stage"}


def test_another_tenants_stage_is_unknown(api, other_tenant):
    make_stage(other_tenant, "theirs")
    response = api.post(
        SCORECARDS, {"name": "X", "stage": "theirs", "measures": [thresholds("events_30d", 0, 5)]}, format="json"
    )
    assert response.status_code == 400 and fields_of(response) == {"stage"}


def test_a_new_version_is_a_draft_until_published(api, tenant, default_card):
    url = f"{SCORECARDS}{default_card.pk}/versions/"
    response = api.post(url, {"measures": [thresholds("events_30d", 0, 100)], "note": "Use all events"}, format="json")
    assert response.status_code == 201
    assert (response.json()["number"], response.json()["is_published"]) == (2, False)
    assert api.get(f"{SCORECARDS}{default_card.pk}/").json()["published_version"]["number"] == 1

    response = api.post(f"{url}2/publish/")
    assert response.status_code == 200 and response.json()["is_published"] is True
    assert api.get(f"{SCORECARDS}{default_card.pk}/").json()["published_version"]["number"] == 2
    assert [v["number"] for v in api.get(url).json()] == [2, 1]
    assert api.post(f"{url}9/publish/").status_code == 404


def test_new_version_validation_points_at_the_measure(api, default_card):
    response = api.post(
        f"{SCORECARDS}{default_card.pk}/versions/",
        {"measures": [thresholds("events_30d", 0, 5), {"source": "events_30d", "weight": 1}]},
        format="json",
    )
    assert response.status_code == 400
    assert fields_of(response) == {"measures[1].source", "measures[1].mapping.type"}


def test_preview_and_backtest_of_a_draft_need_only_read_scope(tenant, default_card):
    make_account(tenant, logins_30d=12)
    reader = make_api_client(tenant, scopes=["read"])
    draft = {"measures": [thresholds("logins_30d", 0, 12)]}

    preview = reader.post(f"{SCORECARDS}{default_card.pk}/preview/", draft, format="json")
    assert preview.status_code == 200
    assert preview.json()["after"]["colours"]["green"] == 1 and preview.json()["colour_changes_total"] == 1

    backtest = reader.post(f"{SCORECARDS}{default_card.pk}/backtest/", {**draft, "days": 30}, format="json")
    assert backtest.status_code == 200 and backtest.json()["days"] == 30
    assert reader.post(SCORECARDS, {"name": "X", "measures": draft["measures"]}, format="json").status_code == 403


def test_version_preview_and_backtest_by_number(api, tenant, default_card):
    make_account(tenant, logins_30d=12)
    assert api.get(f"{SCORECARDS}{default_card.pk}/versions/1/preview/").json()["accounts"] == 1
    assert api.get(f"{SCORECARDS}{default_card.pk}/versions/1/backtest/?days=14").json()["days"] == 14
    assert api.get(f"{SCORECARDS}{default_card.pk}/versions/1/backtest/?days=0").status_code == 400


def test_another_tenants_scorecard_answers_404(other_api, default_card):
    base = f"{SCORECARDS}{default_card.pk}/"
    assert other_api.get(base).status_code == 404
    assert other_api.get(f"{base}versions/").status_code == 404
    assert other_api.post(f"{base}versions/1/publish/").status_code == 404
    assert other_api.post(f"{base}preview/", {"measures": [thresholds("events_30d", 0, 5)]}, format="json").status_code == 404
    assert other_api.delete(base).status_code == 404
    assert other_api.get(SCORECARDS).json() == []


def test_rename_and_delete_are_audited(api, tenant, default_card):
    assert api.patch(f"{SCORECARDS}{default_card.pk}/", {"name": "Everyone"}, format="json").json()["name"] == "Everyone"
    assert api.delete(f"{SCORECARDS}{default_card.pk}/").status_code == 204
    actions = list(AuditLogEntry.objects.for_tenant(tenant).values_list("action", flat=True))
    assert "scorecard.updated" in actions and "scorecard.deleted" in actions


def test_apply_defaults_endpoint(api, tenant):
    make_stage(tenant, "onboarding")
    response = api.post(f"{SCORECARDS}apply-defaults/")
    assert response.status_code == 201
    assert sorted(card["stage"] or "" for card in response.json()) == ["", "onboarding"]


def test_account_health_history_why_and_override(api, tenant, default_card):
    account = make_account(tenant, logins_30d=18)
    today = tenant_today(tenant)
    health_score(tenant=tenant, account_ids=[account.pk], today=today - dt.timedelta(days=7))
    set_metrics(account, logins_30d=4)
    health_score(tenant=tenant, account_ids=[account.pk])
    base = f"/api/v1/accounts/{account.pk}/health/"

    current = api.get(base).json()
    assert (current["score"], current["colour"], current["delta_7d"], current["override"]) == (20.0, "red", -70.0, None)
    assert current["breakdown"][0]["value"] == 4 and current["scorecard"]["version"] == 1

    assert [row["score"] for row in api.get(f"{base}history/?days=30").json()] == [90.0, 20.0]
    why = api.get(f"{base}why/").json()
    assert why["changes"][0]["text"] == "Logins in the last 30 days fell from 18 to 4: -70 points"
    assert api.get(f"{base}why/?from=yesterday").status_code == 400

    response = api.post(f"{base}override/", {"colour": "yellow", "reason": "Budget approved on the call"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["colour"], body["computed_colour"], body["override"]["reason"]) == ("yellow", "red", "Budget approved on the call")
    assert api.post(f"{base}override/", {"reason": "nothing"}, format="json").status_code == 400

    assert api.delete(f"{base}override/").status_code == 204
    assert HealthScore.objects.for_tenant(tenant).get(account=account).colour == "red"
    assert api.delete(f"{base}override/").status_code == 404
    actions = set(AuditLogEntry.objects.for_tenant(tenant).values_list("action", flat=True))
    assert {"health.overridden", "health.override_removed"} <= actions


def test_another_tenants_account_health_answers_404(other_api, tenant, default_card):
    account = make_account(tenant, logins_30d=18)
    health_score(tenant=tenant, account_ids=[account.pk])
    base = f"/api/v1/accounts/{account.pk}/health/"
    for path in ("", "history/", "why/"):
        assert other_api.get(base + path).status_code == 404
    assert other_api.post(f"{base}override/", {"colour": "red", "reason": "x"}, format="json").status_code == 404
    assert other_api.delete(f"{base}override/").status_code == 404
    assert HealthScore.objects.for_tenant(tenant).get(account=account).override_at is None


def test_the_distribution_gives_each_owners_current_customers_by_colour_with_their_mrr_and_renewals(
    api, tenant, default_card, bob, other_tenant
):
    today = tenant_today(tenant)
    for owner, logins, mrr, renews_in in ((bob, 10, 100, 30), (bob, 40, 250, 120), (None, 40, 50, 5)):
        account = make_account(tenant, logins_30d=logins)
        account.owner, account.mrr, account.renewal_date = owner, mrr, today + dt.timedelta(days=renews_in)
        account.save()
    make_account(other_tenant, logins_30d=40)
    health_score(tenant=tenant)

    owners = api.get("/api/v1/health/distribution/").json()["owners"]

    assert owners == [
        {"owner": "bob@alpha.example", "name": "Bob CSM", "green": 1, "yellow": 1, "red": 0, "unscored": 0,
         "customers": 2, "mrr": "350.00", "renewing_90d": 1},
        {"owner": None, "name": "No owner", "green": 1, "yellow": 0, "red": 0, "unscored": 0,
         "customers": 1, "mrr": "50.00", "renewing_90d": 1},
    ]


def test_distribution_and_settings(api, tenant, default_card):
    make_account(tenant, logins_30d=10)
    health_score(tenant=tenant)
    assert api.get("/api/v1/health/distribution/").json()["colours"]["yellow"] == 1

    assert api.get("/api/v1/health/settings/").json() == {"red_below": 40, "green_from": 70}
    response = api.put("/api/v1/health/settings/", {"red_below": 80, "green_from": 50}, format="json")
    assert response.status_code == 400 and fields_of(response) == {"green_from"}
    assert api.put("/api/v1/health/settings/", {"red_below": 60, "green_from": 80}, format="json").status_code == 200
    health_score(tenant=tenant)
    assert api.get("/api/v1/health/distribution/").json()["colours"]["red"] == 1
