"""The metric definitions API: /api/v1/metrics/."""

import pytest

from csplatform.customers.models import Account
from csplatform.rules.metrics import BUILTIN_METRICS
from csplatform.rules.models import MetricDefinition
from csplatform.tenancy.models import AuditLogEntry
from tests.conftest import make_api_client
from tests.factories import AccountFactory

URL = "/api/v1/metrics/"

VALID = {
    "key": "logins_30d",
    "label": "Logins in 30 days",
    "event_names": ["login", "sso_login"],
    "window_days": 30,
    "aggregation": "count",
}


def create(api, **changes):
    return api.post(URL, {**VALID, **changes}, format="json")


def error_fields(response):
    return {item["field"] for item in response.json()["error"]["fields"]}


def audit_actions(tenant):
    return list(AuditLogEntry.objects.for_tenant(tenant).order_by("id").values_list("action", flat=True))


def test_creating_a_metric_stores_it_audits_it_and_marks_every_account_for_recompute(api, tenant, other_tenant):
    ours = AccountFactory.create_batch(3, tenant=tenant)
    AccountFactory(tenant=other_tenant)

    response = create(api, description="Logins, any method")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert {k: body[k] for k in VALID} == VALID
    assert body["property"] == "" and body["subject"] == "account"
    definition = MetricDefinition.objects.for_tenant(tenant).get(pk=body["id"])
    assert definition.description == "Logins, any method"
    assert audit_actions(tenant)[-1] == "metric.created"
    assert set(Account.objects.for_tenant(tenant).dirty()) == set(ours)
    assert not Account.objects.for_tenant(other_tenant).dirty().exists()


def test_listing_shows_only_the_tenants_metrics_and_filters_by_subject(api, other_api):
    create(api)
    create(api, key="exports_7d", subject="contact", event_names=["export"], window_days=7)
    create(other_api, key="their_metric")

    all_keys = [m["key"] for m in api.get(URL).json()["results"]]
    contact_keys = [m["key"] for m in api.get(URL, {"subject": "contact"}).json()["results"]]

    assert all_keys == ["exports_7d", "logins_30d"]
    assert contact_keys == ["exports_7d"]


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"key": "Logins-30d"}, "key"),
        ({"key": "30d_logins"}, "key"),
        ({"key": "events_30d"}, "key"),
        ({"window_days": 0}, "window_days"),
        ({"window_days": 366}, "window_days"),
        ({"event_names": []}, "event_names"),
        ({"event_names": "login"}, "event_names"),
        ({"event_names": [""]}, "event_names[0]"),
        ({"aggregation": "median"}, "aggregation"),
        ({"aggregation": "sum"}, "property"),
        ({"aggregation": "average", "property": ""}, "property"),
        ({"aggregation": "latest"}, "property"),
        ({"aggregation": "count", "property": "score"}, "property"),
        ({"subject": "contact", "aggregation": "distinct_contacts"}, "aggregation"),
        ({"subject": "contact", "aggregation": "sum", "property": "score"}, "aggregation"),
        ({"aggregation": "distinct_values"}, "property"),
        ({"aggregation": "trend", "property": "feature"}, "property"),
        ({"subject": "contact", "aggregation": "distinct_values", "property": "feature"}, "aggregation"),
    ],
)
def test_invalid_definitions_answer_400_naming_the_field(api, tenant, changes, field):
    response = create(api, **changes)

    assert response.status_code == 400
    assert field in error_fields(response)
    assert not MetricDefinition.objects.for_tenant(tenant).exists()


def test_property_aggregations_are_accepted_with_a_property(api):
    for aggregation in ("sum", "average", "latest", "distinct_values"):
        response = create(api, key=f"score_{aggregation}", aggregation=aggregation, property="score")
        assert response.status_code == 201, response.json()


def test_a_trend_needs_no_property_and_may_measure_a_contact(api):
    for subject in ("account", "contact"):
        response = create(api, key=f"login_trend_{subject}", subject=subject, aggregation="trend")
        assert response.status_code == 201, response.json()
        assert response.json()["aggregation"] == "trend"


def test_a_duplicate_key_answers_400_but_another_tenant_may_use_it(api, other_api):
    assert create(api).status_code == 201

    duplicate = create(api, label="Other label")

    assert duplicate.status_code == 400
    assert duplicate.json()["error"]["fields"] == [
        {"field": "key", "code": "invalid", "message": "A metric with this key already exists."}
    ]
    assert create(other_api).status_code == 201


def test_updating_a_metric_audits_before_and_after_and_marks_accounts_for_recompute(api, tenant):
    metric_id = create(api).json()["id"]
    account = AccountFactory(tenant=tenant)

    response = api.patch(f"{URL}{metric_id}/", {"window_days": 7, "label": "Weekly logins"}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["window_days"] == 7
    entry = AuditLogEntry.objects.for_tenant(tenant).filter(action="metric.updated").get()
    assert (entry.before["window_days"], entry.after["window_days"]) == (30, 7)
    assert account in Account.objects.for_tenant(tenant).dirty()


def test_a_label_change_does_not_force_a_recompute(api, tenant):
    metric_id = create(api).json()["id"]
    account = AccountFactory(tenant=tenant)

    assert api.patch(f"{URL}{metric_id}/", {"label": "Sign-ins"}, format="json").status_code == 200

    assert account not in Account.objects.for_tenant(tenant).dirty()


def test_an_update_is_validated_against_the_stored_fields(api):
    metric_id = create(api).json()["id"]

    response = api.patch(f"{URL}{metric_id}/", {"aggregation": "average"}, format="json")

    assert response.status_code == 400
    assert error_fields(response) == {"property"}


def test_a_metrics_key_cannot_change(api, tenant):
    metric_id = create(api).json()["id"]

    response = api.patch(f"{URL}{metric_id}/", {"key": "renamed"}, format="json")

    assert response.status_code == 400
    assert error_fields(response) == {"key"}
    assert MetricDefinition.objects.for_tenant(tenant).get().key == "logins_30d"


def test_deleting_a_metric_audits_it_and_marks_accounts_for_recompute(api, tenant):
    metric_id = create(api).json()["id"]
    account = AccountFactory(tenant=tenant)

    response = api.delete(f"{URL}{metric_id}/")

    assert response.status_code == 204
    assert not MetricDefinition.objects.for_tenant(tenant).exists()
    entry = AuditLogEntry.objects.for_tenant(tenant).filter(action="metric.deleted").get()
    assert entry.before["key"] == "logins_30d" and entry.object_id == str(metric_id)
    assert account in Account.objects.for_tenant(tenant).dirty()


def test_another_tenants_metric_answers_404(api, other_api, tenant):
    metric_id = create(api).json()["id"]

    assert other_api.get(f"{URL}{metric_id}/").status_code == 404
    assert other_api.patch(f"{URL}{metric_id}/", {"window_days": 7}, format="json").status_code == 404
    assert other_api.delete(f"{URL}{metric_id}/").status_code == 404
    assert MetricDefinition.objects.for_tenant(tenant).get().window_days == 30


def test_a_read_only_key_can_list_but_not_create(tenant):
    reader = make_api_client(tenant, scopes=["read"])

    assert reader.get(URL).status_code == 200
    response = create(reader)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_builtin_lists_every_builtin_key_with_its_label(api):
    response = api.get(f"{URL}builtin/")

    assert response.status_code == 200
    listed = {(m["subject"], m["key"]): m["label"] for m in response.json()}
    expected = {(subject, key): label for subject, metrics in BUILTIN_METRICS.items() for key, label in metrics.items()}
    assert listed == expected
    assert ("account", "days_to_renewal") in listed and ("contact", "events_30d") in listed
