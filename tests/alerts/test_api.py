"""The alerts API: segments, alert rules, alerts and webhook endpoints, scoped to the key's tenant."""

import csv
import datetime as dt
import io

import pytest
from django.utils import timezone

from alerts.models import Alert, WebhookDelivery
from alerts.services import alert_rule_create, alerts_evaluate, segments_refresh
from alerts.webhooks import webhook_deliver_due, webhook_emit
from csplatform.customers.models import Account
from csplatform.tenancy.models import AuditLogEntry
from tests.factories import AccountFactory, ContactFactory

from .conftest import Receiver

pytestmark = pytest.mark.django_db


def all_ids(tenant):
    return list(Account.objects.for_tenant(tenant).values_list("pk", flat=True))


def test_invalid_segment_criteria_answer_400_pointing_at_the_error(api):
    response = api.post(
        "/api/v1/segments/", {"key": "big", "name": "Big", "criteria_text": "account.mrrr >= 1000"}, format="json"
    )

    assert response.status_code == 400
    (error,) = response.json()["error"]["fields"]
    assert error["field"] == "criteria_text"
    assert "Line 1, column 1: Unknown field account.mrrr" in error["message"] and "account.mrr" in error["message"]


def test_segment_members_are_listed_filtered_counted_and_exported(api, tenant, bob):
    big = AccountFactory(tenant=tenant, name="Big Co", mrr=5000, owner=bob)
    AccountFactory(tenant=tenant, name="Huge Co", mrr=9000)
    AccountFactory(tenant=tenant, name="Small Co", mrr=100)
    response = api.post(
        "/api/v1/segments/", {"key": "big", "name": "Big accounts", "criteria_text": "account.mrr >= 1000"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert api.post("/api/v1/segments/preview/", {"criteria_text": "account.mrr >= 1000"}, format="json").json()["count"] == 2
    assert api.get("/api/v1/segments/big/count/").json() == {"live": 2, "members": 0}
    segments_refresh(tenant=tenant, account_ids=all_ids(tenant))

    members = api.get("/api/v1/segments/big/members/").json()["results"]
    mine = api.get("/api/v1/segments/big/members/", {"owner": "bob@alpha.example"}).json()["results"]
    exported = list(csv.DictReader(io.StringIO(b"".join(api.get("/api/v1/segments/big/export/").streaming_content).decode())))

    assert [m["account"]["name"] for m in members] == ["Big Co", "Huge Co"]
    assert [m["account"]["id"] for m in mine] == [big.pk]
    assert [row["account_name"] for row in exported] == ["Big Co", "Huge Co"]
    assert api.get("/api/v1/segments/big/").json()["member_count"] == 2
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="segment.created").count() == 1


def test_the_segment_export_quotes_cells_a_spreadsheet_would_run_as_formulas(api, tenant):
    account = AccountFactory(tenant=tenant, name='=HYPERLINK("http://evil.example","Big Co")', mrr=5000)
    ContactFactory(account=account, name="+cmd|' /C calc'!A0", email="champ@customer.example")
    api.post(
        "/api/v1/segments/",
        {"key": "champs", "name": "Champions", "subject": "contact", "criteria_text": "account.mrr >= 1000"},
        format="json",
    )
    segments_refresh(tenant=tenant, account_ids=all_ids(tenant))

    body = b"".join(api.get("/api/v1/segments/champs/export/").streaming_content).decode()
    [row] = list(csv.DictReader(io.StringIO(body)))

    assert row["account_name"] == '\'=HYPERLINK("http://evil.example","Big Co")'
    assert row["contact_name"] == "'+cmd|' /C calc'!A0"
    assert row["contact_email"] == "champ@customer.example"


def test_a_contact_segment_lists_its_contacts(api, tenant):
    account = AccountFactory(tenant=tenant)
    admin = ContactFactory(account=account, role="administrator")
    ContactFactory(account=account, role="user")
    api.post("/api/v1/segments/", {"key": "admins", "name": "Admins", "subject": "contact",
                                   "criteria_text": 'contact.role == "administrator"'}, format="json")
    segments_refresh(tenant=tenant, account_ids=[account.pk])

    (member,) = api.get("/api/v1/segments/admins/members/").json()["results"]

    assert member["contact"]["id"] == admin.pk and member["account"]["id"] == account.pk


def test_alerts_are_filtered_acknowledged_and_resolved_through_the_api(api, tenant, bob):
    mine = AccountFactory(tenant=tenant, plan="trial", owner=bob)
    AccountFactory(tenant=tenant, plan="trial")
    response = api.post("/api/v1/alert-rules/", {"key": "trial", "name": "On trial", "condition_text": 'account.plan == "trial"',
                                                  "severity": "info"}, format="json")
    assert response.status_code == 201, response.content
    alerts_evaluate(tenant=tenant, account_ids=all_ids(tenant))

    (alert,) = api.get("/api/v1/alerts/", {"owner": "bob@alpha.example", "rule": "trial", "status": "open"}).json()["results"]
    acknowledged = api.post(f"/api/v1/alerts/{alert['id']}/acknowledge/", {}, format="json")
    resolved = api.post(f"/api/v1/alerts/{alert['id']}/resolve/", {"note": "Converted to pro."}, format="json")
    again = api.post(f"/api/v1/alerts/{alert['id']}/resolve/", {}, format="json")

    assert alert["account"] == mine.pk
    assert acknowledged.json()["status"] == "acknowledged"
    assert (resolved.json()["status"], resolved.json()["resolution"], resolved.json()["note"]) == ("resolved", "manual", "Converted to pro.")
    assert again.status_code == 400
    assert len(api.get("/api/v1/alerts/", {"status": "open"}).json()["results"]) == 1


def test_alerts_are_listed_the_most_severe_or_oldest_first_when_asked_and_an_unknown_ordering_is_a_400(api, tenant):
    account = AccountFactory(tenant=tenant)
    opened = [(1, "Newest warning", "warning"), (2, "Critical", "critical"), (3, "Oldest info", "info")]
    for hours_ago, title, severity in opened:
        Alert.objects.create(tenant=tenant, account=account, title=title, severity=severity,
                             opened_at=timezone.now() - dt.timedelta(hours=hours_ago))

    def titles(**query):
        return [alert["title"] for alert in api.get("/api/v1/alerts/", query).json()["results"]]

    assert titles() == titles(ordering="-opened_at") == ["Newest warning", "Critical", "Oldest info"]
    assert titles(ordering="-severity") == ["Critical", "Newest warning", "Oldest info"]
    assert titles(ordering="opened_at") == ["Oldest info", "Critical", "Newest warning"]
    response = api.get("/api/v1/alerts/", {"ordering": "loudest"})
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["error"]["fields"]] == ["ordering"]


def test_many_alerts_are_acknowledged_then_resolved_in_one_call_each(api, tenant, other_tenant):
    alert_rule_create(tenant=tenant, actor=None, key="trial", name="On trial", condition_text='account.plan == "trial"')
    AccountFactory.create_batch(3, tenant=tenant, plan="trial")
    alerts_evaluate(tenant=tenant, account_ids=all_ids(tenant))
    first, second, third = Alert.objects.for_tenant(tenant).order_by("pk").values_list("pk", flat=True)
    theirs = Alert.objects.create(
        tenant=other_tenant, account=AccountFactory(tenant=other_tenant), title="Theirs", opened_at=timezone.now()
    )

    seen = api.post("/api/v1/alerts/acknowledge/", {"ids": [first, second, theirs.pk], "note": "On it"}, format="json")
    closed = api.post("/api/v1/alerts/resolve/", {"ids": [first, second, third]}, format="json")
    again = api.post("/api/v1/alerts/resolve/", {"ids": [first]}, format="json")

    assert seen.json() == {"changed": [first, second], "unchanged": [theirs.pk]}
    assert closed.json() == {"changed": [first, second, third], "unchanged": []}
    assert again.json() == {"changed": [], "unchanged": [first]}
    stored = Alert.objects.for_tenant(tenant).get(pk=first)
    assert (stored.status, stored.resolution, stored.note) == ("resolved", "manual", "On it")
    assert Alert.objects.for_tenant(other_tenant).get(pk=theirs.pk).status == "open"


def test_alerts_are_snoozed_until_a_moment_and_woken_through_the_api(api, tenant, other_tenant):
    first, second = (
        Alert.objects.create(tenant=tenant, account=AccountFactory(tenant=tenant), title=title, opened_at=timezone.now())
        for title in ("First", "Second")
    )
    theirs = Alert.objects.create(
        tenant=other_tenant, account=AccountFactory(tenant=other_tenant), title="Theirs", opened_at=timezone.now()
    )
    until = (timezone.now() + dt.timedelta(days=2)).isoformat()

    snoozed = api.post("/api/v1/alerts/snooze/", {"ids": [first.pk, theirs.pk], "until": until}, format="json")

    assert snoozed.json() == {"changed": [first.pk], "unchanged": [theirs.pk]}
    assert [a["id"] for a in api.get("/api/v1/alerts/", {"snoozed": "true"}).json()["results"]] == [first.pk]
    assert [a["id"] for a in api.get("/api/v1/alerts/", {"snoozed": "false"}).json()["results"]] == [second.pk]
    assert api.get(f"/api/v1/alerts/{first.pk}/").json()["snoozed_until"] is not None
    assert Alert.objects.for_tenant(other_tenant).get(pk=theirs.pk).snoozed_until is None

    woken = api.post("/api/v1/alerts/wake/", {"ids": [first.pk, second.pk]}, format="json")
    assert woken.json() == {"changed": [first.pk], "unchanged": [second.pk]}


@pytest.mark.parametrize("days", [-1, 91])
def test_a_snooze_outside_the_next_ninety_days_answers_400_on_until(api, tenant, days):
    alert = Alert.objects.create(tenant=tenant, account=AccountFactory(tenant=tenant), title="A", opened_at=timezone.now())
    until = (timezone.now() + dt.timedelta(days=days)).isoformat()

    response = api.post("/api/v1/alerts/snooze/", {"ids": [alert.pk], "until": until}, format="json")

    assert response.status_code == 400
    assert [error["field"] for error in response.json()["error"]["fields"]] == ["until"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"ids": []}, "ids"), ({"ids": ["x"]}, "ids[0]"), ({"ids": [0]}, "ids[0]"), ({}, "ids"), ({"ids": [1] * 1001}, "ids")],
)
def test_a_call_on_many_alerts_without_fitting_ids_answers_400_naming_them(api, body, field):
    response = api.post("/api/v1/alerts/acknowledge/", body, format="json")

    assert response.status_code == 400
    assert [error["field"] for error in response.json()["error"]["fields"]] == [field]


def test_invalid_alert_rules_answer_400(api):
    bad_condition = api.post("/api/v1/alert-rules/", {"key": "x", "name": "X", "condition_text": "health.score <"}, format="json")
    slack_without_url = api.post("/api/v1/alert-rules/", {"key": "y", "name": "Y", "condition_text": "health.score < 40",
                                                          "channels": ["slack"]}, format="json")

    assert bad_condition.status_code == 400 and bad_condition.json()["error"]["fields"][0]["field"] == "condition_text"
    assert slack_without_url.status_code == 400
    assert slack_without_url.json()["error"]["fields"][0]["field"] == "slack_webhook_url"


def test_a_slack_webhook_url_is_written_but_never_read_back(api, settings):
    settings.CSP_WEBHOOK_ALLOW_PRIVATE = True
    created = api.post("/api/v1/alert-rules/", {"key": "slack", "name": "Slack", "condition_text": "health.score < 40",
                                                "channels": ["slack"],
                                                "slack_webhook_url": "http://127.0.0.1:9/services/T0/B0/secret"},
                       format="json")

    assert created.status_code == 201, created.content
    listed = api.get("/api/v1/alert-rules/slack/").json()
    assert "secret" not in created.content.decode() + str(listed)
    assert listed["has_slack_webhook"] is True


def test_another_tenants_objects_answer_404(api, other_api, other_tenant):
    account = AccountFactory(tenant=other_tenant, plan="trial")
    other_api.post("/api/v1/segments/", {"key": "theirs", "name": "Theirs", "criteria_text": "account.mrr >= 0"}, format="json")
    rule = alert_rule_create(tenant=other_tenant, actor=None, key="theirs", name="Theirs", condition_text='account.plan == "trial"')
    alerts_evaluate(tenant=other_tenant, account_ids=[account.pk])
    alert = Alert.objects.for_tenant(other_tenant).get(rule=rule)
    hook = other_api.post("/api/v1/webhooks/", {"url": "https://93.184.215.14/hook", "event_types": ["alert.opened"]}, format="json")
    assert hook.status_code == 201, hook.content

    assert api.get("/api/v1/segments/theirs/members/").status_code == 404
    assert api.get("/api/v1/alert-rules/theirs/").status_code == 404
    assert api.post(f"/api/v1/alerts/{alert.pk}/acknowledge/", {}, format="json").status_code == 404
    assert api.post(f"/api/v1/webhooks/{hook.json()['id']}/rotate-secret/").status_code == 404
    assert api.get(f"/api/v1/webhooks/{hook.json()['id']}/deliveries/").status_code == 404
    assert api.get("/api/v1/alerts/").json()["results"] == []


def test_a_webhook_secret_is_shown_at_creation_and_rotation_only(api, tenant):
    created = api.post("/api/v1/webhooks/", {"url": "https://93.184.215.14/hook", "event_types": ["alert.opened"]}, format="json")
    hook_id = created.json()["id"]

    shown = api.get(f"/api/v1/webhooks/{hook_id}/").json()
    rotated = api.post(f"/api/v1/webhooks/{hook_id}/rotate-secret/").json()

    assert created.json()["secret"].startswith("whsec_")
    assert "secret" not in shown
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created.json()["secret"]
    actions = list(AuditLogEntry.objects.for_tenant(tenant).filter(object_type="alerts.webhooksubscription").values_list("action", flat=True))
    assert sorted(actions) == ["webhook.created", "webhook.secret_rotated"]
    assert all("whsec_" not in str(entry.after) for entry in AuditLogEntry.objects.for_tenant(tenant))


def test_a_private_webhook_url_is_refused_at_save_with_the_reason(api):
    response = api.post("/api/v1/webhooks/", {"url": "http://10.0.0.5/hook", "event_types": ["alert.opened"]}, format="json")

    assert response.status_code == 400
    (error,) = response.json()["error"]["fields"]
    assert error["field"] == "url" and "10.0.0.5, a private address" in error["message"]


def test_the_test_event_reaches_the_endpoint_and_shows_in_the_delivery_log(api, tenant, allow_private):
    with Receiver() as receiver:
        hook = api.post("/api/v1/webhooks/", {"url": receiver.url, "event_types": ["alert.opened"]}, format="json").json()
        receiver.secret = hook["secret"]
        queued = api.post(f"/api/v1/webhooks/{hook['id']}/test/")
        webhook_deliver_due()

    log = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries/").json()["results"]
    assert queued.status_code == 202
    assert [(row["event_type"], row["status"]) for row in log] == [("webhook.test", "delivered")]
    assert receiver.refusals == [] and receiver.requests[0]["json"]["type"] == "webhook.test"


def test_the_delivery_log_filters_by_status_and_event_and_refuses_an_unknown_status(api, tenant, allow_private):
    endpoint = {"url": "http://127.0.0.1:9/hook", "event_types": ["alert.opened"]}
    hook = api.post("/api/v1/webhooks/", endpoint, format="json").json()
    webhook_emit(tenant=tenant, event_type="alert.opened", payload={}, idempotency_key="a")
    webhook_emit(tenant=tenant, event_type="alert.opened", payload={}, idempotency_key="b")
    api.post(f"/api/v1/webhooks/{hook['id']}/test/")
    WebhookDelivery.objects.for_tenant(tenant).filter(idempotency_key="a").update(status="failed")
    log = f"/api/v1/webhooks/{hook['id']}/deliveries/"

    failed = api.get(log, {"status": "failed"}).json()["results"]
    tests = api.get(log, {"event_type": "webhook.test"}).json()["results"]
    pending_alerts = api.get(log, {"status": "pending", "event_type": "alert.opened"}).json()["results"]
    refused = api.get(log, {"status": "lost"})

    assert [row["idempotency_key"] for row in failed] == ["a"]
    assert [row["event_type"] for row in tests] == ["webhook.test"]
    assert [row["idempotency_key"] for row in pending_alerts] == ["b"]
    assert refused.status_code == 400
    (error,) = refused.json()["error"]["fields"]
    assert error["field"] == "status" and "lost" in error["message"]


def test_enabling_a_disabled_endpoint_sends_the_deliveries_that_waited(api, tenant, settings, allow_private):
    settings.CSP_WEBHOOK_DISABLE_AFTER = 1
    with Receiver(statuses=[500]) as receiver:
        hook = api.post("/api/v1/webhooks/", {"url": receiver.url, "event_types": ["alert.opened"]}, format="json").json()
        from alerts.webhooks import webhook_emit

        webhook_emit(tenant=tenant, event_type="alert.opened", payload={}, idempotency_key="a")
        webhook_emit(tenant=tenant, event_type="alert.opened", payload={}, idempotency_key="b")
        webhook_deliver_due()
        assert api.get(f"/api/v1/webhooks/{hook['id']}/").json()["active"] is False

        enabled = api.patch(f"/api/v1/webhooks/{hook['id']}/", {"active": True}, format="json").json()
        webhook_deliver_due()

    assert (enabled["active"], enabled["consecutive_failures"], enabled["disabled_at"]) == (True, 0, None)
    statuses = sorted(WebhookDelivery.objects.for_tenant(tenant).values_list("idempotency_key", "status"))
    assert statuses == [("a", "pending"), ("b", "delivered")]
    assert len(receiver.requests) == 2
