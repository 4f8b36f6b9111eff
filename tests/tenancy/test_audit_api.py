"""The audit log through the API: every configuration change, newest first, for integrations such as a SIEM."""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from csplatform.tenancy.models import AuditLogEntry
from csplatform.tenancy.services import api_key_create
from lifecycle.services import stage_create, stage_update
from tests.conftest import make_api_client

pytestmark = pytest.mark.django_db
URL = "/api/v1/audit-log/"


def test_the_log_lists_each_change_newest_first_with_who_and_the_record_before_and_after(api, tenant, alice):
    stage = stage_create(tenant=tenant, actor=alice, key="trial", name="Trial")
    stage_update(tenant=tenant, stage=stage, actor=alice, name="Free trial")

    response = api.get(URL, {"object_type": "lifecycle.stage"})

    assert response.status_code == 200
    updated, created = response.json()["results"]
    assert (updated["action"], created["action"]) == ("stage.updated", "stage.created")
    assert updated["by"] == "Alice Admin" and updated["by_email"] == "alice@alpha.example"
    assert (updated["object_id"], updated["object_repr"]) == (str(stage.pk), "Free trial")
    assert (updated["before"]["name"], updated["after"]["name"]) == ("Trial", "Free trial")
    assert created["before"] is None and created["after"]["key"] == "trial"


@pytest.mark.parametrize("bound, shown", [("since", ["New"]), ("until", ["Old"])])
def test_the_log_reads_one_actions_changes_since_or_until_a_moment(api, tenant, alice, bound, shown):
    stage_create(tenant=tenant, actor=alice, key="old", name="Old")
    AuditLogEntry.objects.for_tenant(tenant).update(created_at=timezone.now() - dt.timedelta(days=2))
    stage_create(tenant=tenant, actor=alice, key="new", name="New")
    moment = (timezone.now() - dt.timedelta(days=1)).isoformat()

    results = api.get(URL, {"action": "stage.created", bound: moment}).json()["results"]

    assert [entry["object_repr"] for entry in results] == shown


def test_the_log_reads_one_persons_changes_by_email(api, tenant, alice, bob):
    stage_create(tenant=tenant, actor=alice, key="trial", name="Trial")
    stage_create(tenant=tenant, actor=bob, key="paid", name="Paid")

    results = api.get(URL, {"by_email": "ALICE@alpha.example"}).json()["results"]

    assert [entry["object_repr"] for entry in results] == ["Trial"]
    assert api.get(URL, {"by_email": "not an email"}).status_code == 400


def test_a_change_made_through_the_api_names_the_key_and_no_secret_is_listed(tenant, alice, settings):
    settings.CSP_WEBHOOK_ALLOW_PRIVATE = True
    _, raw_key = api_key_create(tenant=tenant, name="SIEM", scopes=["read", "write"], created_by=alice)
    api = APIClient(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    created = api.post(
        "/api/v1/webhooks/", {"url": "http://127.0.0.1:9/hooks", "event_types": ["alert.opened"]}, format="json"
    )
    assert created.status_code == 201

    (entry,) = api.get(URL, {"action": "webhook.created"}).json()["results"]

    assert entry["by"].startswith("Alice Admin via key SIEM (") and entry["by_email"] == "alice@alpha.example"
    assert entry["after"]["url"] == "http://127.0.0.1:9/hooks"
    assert created.json()["secret"] not in str(entry) and "secret" not in entry["after"]


def test_the_log_holds_only_the_keys_tenant_and_needs_the_read_scope(api, other_api, tenant, other_tenant, alice):
    stage_create(tenant=other_tenant, actor=None, key="theirs", name="Theirs")
    stage_create(tenant=tenant, actor=alice, key="ours", name="Ours")

    assert [entry["object_repr"] for entry in api.get(URL, {"action": "stage.created"}).json()["results"]] == ["Ours"]
    assert make_api_client(tenant, scopes=["ingest"]).get(URL).status_code == 403


@pytest.mark.parametrize("query", ["since=yesterday", "since=2026-13-40T00:00:00Z", "until=tomorrow"])
def test_a_bad_moment_is_a_400_naming_its_filter(api, query):
    response = api.get(f"{URL}?{query}")

    assert response.status_code == 400
    assert [field["field"] for field in response.json()["error"]["fields"]] == [query.split("=")[0]]
