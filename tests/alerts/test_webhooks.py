"""Outbound webhooks against real HTTP receivers: signing, idempotency, retries, disabling and the SSRF guard."""

import http.client
import json
import time
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from alerts.account_events import account_changes_emit, account_updates_emit, contact_updates_emit
from alerts.models import Alert, DeliveryStatus, Notification, WebhookDelivery, WebhookSubscription
from alerts.notifications import notifications_send_due
from alerts.services import alerts_acknowledge
from alerts.webhooks import (
    MAX_ATTEMPTS,
    SignatureError,
    sign,
    verify_signature,
    webhook_deliver_due,
    webhook_deliveries_retry,
    webhook_emit,
    webhook_secret_rotate,
    webhook_subscription_create,
    webhook_subscription_update,
    webhooks_emit,
)
from csplatform.customers.models import AccountChange, ContactChange
from csplatform.customers.services import account_bulk_upsert, contact_bulk_upsert, contact_delete, contact_upsert
from csplatform.tenancy.models import AuditLogEntry
from tests.factories import AccountFactory, ContactFactory

from .conftest import Receiver

pytestmark = pytest.mark.django_db


def subscribe(tenant, url, event_types=("alert.opened",)):
    return webhook_subscription_create(tenant=tenant, actor=None, url=url, event_types=list(event_types))


def emit(tenant, key="alert:1:opened", data=None):
    return webhook_emit(tenant=tenant, event_type="alert.opened", payload=data or {"alert": {"id": 1}}, idempotency_key=key)


def test_a_delivery_is_signed_and_a_subscriber_verifies_it(tenant, allow_private):
    with Receiver() as receiver:
        _, receiver.secret = subscribe(tenant, receiver.url)
        (delivery_id,) = emit(tenant, data={"alert": {"id": 7, "title": "Card expires"}})

        webhook_deliver_due()

    assert receiver.refusals == []
    (request,) = receiver.requests
    event = request["json"]
    delivery = WebhookDelivery.objects.for_tenant(tenant).get(pk=delivery_id)
    assert event == {
        "id": str(delivery.event_id),
        "type": "alert.opened",
        "created": delivery.created_at.isoformat(),
        "tenant": "alpha",
        "data": {"alert": {"id": 7, "title": "Card expires"}},
    }
    assert request["headers"]["CSP-Event-Id"] == str(delivery.event_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.DELIVERED, 1, 200)


def test_emitting_twice_with_one_idempotency_key_delivers_once(tenant, receiver):
    subscribe(tenant, receiver.url)
    other, _ = subscribe(tenant, receiver.url, event_types=["account.stage_changed"])

    first = emit(tenant)
    second = emit(tenant)
    webhook_deliver_due()
    webhook_deliver_due()

    assert first == second and len(first) == 1
    assert len(receiver.requests) == 1
    assert not WebhookDelivery.objects.for_tenant(tenant).filter(subscription=other).exists()


def test_a_batch_of_events_reaches_every_endpoint_in_a_fixed_number_of_queries(
    tenant, receiver, django_assert_max_num_queries
):
    endpoints = [subscribe(tenant, receiver.url)[0] for _ in range(2)]
    events = [({"alert": {"id": n}}, f"alert:{n}:opened") for n in range(50)]

    with django_assert_max_num_queries(6):
        ids = webhooks_emit(tenant=tenant, event_type="alert.opened", rows=events, event=lambda event: event)

    deliveries = WebhookDelivery.objects.for_tenant(tenant)
    assert len(ids) == 100
    assert set(deliveries.values_list("subscription_id", "idempotency_key")) == {
        (endpoint.pk, key) for endpoint in endpoints for _, key in events
    }
    # Both endpoints get each event under the same event id.
    assert deliveries.values("event_id").distinct().count() == 50
    assert webhooks_emit(tenant=tenant, event_type="alert.opened", rows=events, event=lambda event: event) == ids
    assert deliveries.count() == 100


def test_events_are_not_built_when_no_endpoint_subscribes_to_their_type(tenant, receiver):
    subscribe(tenant, receiver.url, event_types=["account.stage_changed"])

    def events():
        raise AssertionError("An event was built for nobody.")
        yield

    assert webhooks_emit(tenant=tenant, event_type="alert.opened", rows=events(), event=lambda event: event) == []


def test_account_changes_read_no_rows_for_a_tenant_without_endpoints(tenant, django_assert_num_queries):
    account = AccountFactory(tenant=tenant)

    # One look at the endpoints per event type, and nothing else.
    with django_assert_num_queries(2):
        account_changes_emit(
            tenant=tenant, moved_ids={account.pk}, colour_changed_ids={account.pk}, since=timezone.now()
        )


def test_a_failed_delivery_is_retried_with_backoff_until_it_lands(tenant, allow_private):
    with Receiver(statuses=[500, 503]) as receiver:
        subscribe(tenant, receiver.url)
        (delivery_id,) = emit(tenant)
        now = timezone.now()

        webhook_deliver_due(now=now)
        first = WebhookDelivery.objects.for_tenant(tenant).get(pk=delivery_id)
        assert webhook_deliver_due(now=now) == 0  # not due again yet
        webhook_deliver_due(now=first.next_attempt_at)
        second = WebhookDelivery.objects.for_tenant(tenant).get(pk=delivery_id)
        webhook_deliver_due(now=second.next_attempt_at)

    delivery = WebhookDelivery.objects.for_tenant(tenant).get(pk=delivery_id)
    assert (first.status, first.last_status_code, first.attempts) == (DeliveryStatus.PENDING, 500, 1)
    assert first.next_attempt_at > now and second.next_attempt_at - now > first.next_attempt_at - now
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 3)
    assert len({r["json"]["id"] for r in receiver.requests}) == 1 and len(receiver.requests) == 3
    assert WebhookSubscription.objects.for_tenant(tenant).get().consecutive_failures == 0


def fail_for_good(tenant, delivery_id):
    """Attempt a delivery until its last attempt fails."""
    for _ in range(MAX_ATTEMPTS):
        due = WebhookDelivery.objects.for_tenant(tenant).get(pk=delivery_id).next_attempt_at
        webhook_deliver_due(now=due)


def test_a_delivery_failed_for_good_sent_again_through_the_api_lands_with_its_event_id(
    tenant, allow_private, api, settings
):
    settings.CSP_WEBHOOK_DISABLE_AFTER = MAX_ATTEMPTS + 1
    with Receiver(statuses=[500] * MAX_ATTEMPTS) as receiver:
        subscription, _ = subscribe(tenant, receiver.url)
        (delivery_id,) = emit(tenant)
        fail_for_good(tenant, delivery_id)
        assert WebhookDelivery.objects.for_tenant(tenant).get(pk=delivery_id).status == DeliveryStatus.FAILED

        response = api.post(f"/api/v1/webhooks/{subscription.pk}/retry-failed/", {}, format="json")
        webhook_deliver_due()

    assert response.status_code == 200 and response.json() == {"retried": [delivery_id]}
    delivery = WebhookDelivery.objects.for_tenant(tenant).get(pk=delivery_id)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 1)
    assert len(receiver.requests) == MAX_ATTEMPTS + 1
    assert len({request["json"]["id"] for request in receiver.requests}) == 1
    assert AuditLogEntry.objects.for_tenant(tenant).get(action="webhook.retried").after == {"deliveries": 1}


def test_sending_again_refuses_an_id_that_is_not_one_naming_it(tenant, allow_private, api):
    subscription, _ = subscribe(tenant, "http://127.0.0.1:9/hooks")

    response = api.post(f"/api/v1/webhooks/{subscription.pk}/retry-failed/", {"ids": ["x"]}, format="json")

    assert response.status_code == 400
    assert [field["field"] for field in response.json()["error"]["fields"]] == ["ids[0]"]


def test_only_the_endpoints_failed_deliveries_named_are_sent_again(tenant, allow_private):
    subscription, _ = subscribe(tenant, "http://127.0.0.1:9/hooks")
    other, _ = subscribe(tenant, "http://127.0.0.1:9/other")
    # Four events, each delivered to both endpoints; the last stays pending.
    failed, delivered, named, pending = (emit(tenant, key=f"event:{n}") for n in range(4))
    deliveries = WebhookDelivery.objects.for_tenant(tenant)
    deliveries.filter(subscription=subscription, pk__in=failed + named).update(status=DeliveryStatus.FAILED)
    deliveries.filter(subscription=subscription, pk__in=delivered).update(status=DeliveryStatus.DELIVERED)
    deliveries.filter(subscription=other).update(status=DeliveryStatus.FAILED)
    ours = set(deliveries.filter(subscription=subscription).values_list("pk", flat=True))
    (named_id,) = ours & set(named)

    retried = webhook_deliveries_retry(
        tenant=tenant, subscription=subscription, actor=None, delivery_ids=[named_id, *delivered, *pending]
    )

    assert retried == [named_id]
    assert deliveries.get(pk=named_id).status == DeliveryStatus.PENDING
    assert deliveries.filter(subscription=other, status=DeliveryStatus.FAILED).count() == 4
    assert webhook_deliveries_retry(tenant=tenant, subscription=subscription, actor=None) == sorted(ours & set(failed))


def test_deliveries_sent_again_to_a_disabled_endpoint_wait_until_it_is_enabled(tenant, allow_private):
    with Receiver() as receiver:
        subscription, _ = subscribe(tenant, receiver.url)
        (delivery_id,) = emit(tenant)
        WebhookDelivery.objects.for_tenant(tenant).filter(pk=delivery_id).update(status=DeliveryStatus.FAILED)
        webhook_subscription_update(tenant=tenant, subscription=subscription, actor=None, active=False)

        assert webhook_deliveries_retry(tenant=tenant, subscription=subscription, actor=None) == [delivery_id]
        assert webhook_deliver_due() == 0
        webhook_subscription_update(tenant=tenant, subscription=subscription, actor=None, active=True)
        webhook_deliver_due()

    assert WebhookDelivery.objects.for_tenant(tenant).get(pk=delivery_id).status == DeliveryStatus.DELIVERED
    assert len(receiver.requests) == 1


def test_an_endpoint_failing_repeatedly_is_disabled_and_the_admins_are_emailed(tenant, alice, settings, allow_private, smtp_server):
    settings.CSP_WEBHOOK_DISABLE_AFTER = 3
    with Receiver(statuses=[500] * 10) as receiver:
        subscription, _ = subscribe(tenant, receiver.url)
        for n in range(4):
            emit(tenant, key=f"event:{n}")

        webhook_deliver_due()
        webhook_deliver_due()

    subscription.refresh_from_db()
    assert not subscription.active and subscription.disabled_at is not None
    assert len(receiver.requests) == 3  # the fourth waits for the endpoint to be enabled again
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="webhook.disabled", object_id=str(subscription.pk)).count() == 1
    notifications_send_due()
    (message,) = smtp_server.messages
    assert str(message["To"]) == "alice@alpha.example"
    assert receiver.url in str(message["Subject"])
    assert Notification.objects.for_tenant(tenant).get().status == DeliveryStatus.DELIVERED


def test_loopback_and_private_endpoints_are_refused_unless_allowed(tenant):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="loopback"):
        subscribe(tenant, "http://127.0.0.1:8000/hooks")
    with pytest.raises(ValidationError, match="private"):
        subscribe(tenant, "http://10.1.2.3/hooks")
    with pytest.raises(ValidationError, match="link-local"):
        subscribe(tenant, "http://169.254.169.254/latest/meta-data")
    with pytest.raises(ValidationError, match="private"):
        subscribe(tenant, "http://[::ffff:192.168.0.1]/hooks")


def test_the_guard_is_checked_again_at_delivery_time(tenant, settings):
    settings.CSP_WEBHOOK_ALLOW_PRIVATE = True
    with Receiver() as receiver:
        subscribe(tenant, receiver.url)
        (delivery_id,) = emit(tenant)
        settings.CSP_WEBHOOK_ALLOW_PRIVATE = False

        webhook_deliver_due()

    delivery = WebhookDelivery.objects.for_tenant(tenant).get(pk=delivery_id)
    assert receiver.requests == []
    assert delivery.status == DeliveryStatus.PENDING and "loopback" in delivery.last_error


def test_a_rotated_secret_signs_the_next_deliveries(tenant, allow_private):
    with Receiver() as receiver:
        subscription, old_secret = subscribe(tenant, receiver.url)
        new_secret = receiver.secret = webhook_secret_rotate(tenant=tenant, subscription=subscription, actor=None)
        emit(tenant)
        webhook_deliver_due()

    assert new_secret != old_secret
    assert len(receiver.requests) == 1 and receiver.refusals == []


BODY = json.dumps({"id": "3f1c", "type": "alert.opened", "data": {}}).encode()


def test_verify_signature_accepts_a_fresh_untampered_event_and_its_re_signed_retry():
    now = time.time()
    first = sign("whsec_test", BODY, int(now))
    retry = sign("whsec_test", BODY, int(now) + 90)

    assert verify_signature("whsec_test", first, BODY, now=now)["id"] == "3f1c"
    assert verify_signature("whsec_test", retry, BODY, now=now + 90)["id"] == "3f1c"


def test_verify_signature_rejects_a_stale_timestamp():
    header = sign("whsec_test", BODY, int(time.time()) - 301)
    with pytest.raises(SignatureError, match="at most 300 s"):
        verify_signature("whsec_test", header, BODY)


def test_verify_signature_rejects_a_tampered_body_or_the_wrong_secret():
    header = sign("whsec_test", BODY, int(time.time()))
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature("whsec_test", header, BODY.replace(b"alert.opened", b"alert.resolved"))
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature("whsec_other", header, BODY)
    with pytest.raises(SignatureError, match="must hold"):
        verify_signature("whsec_test", "v1=abc", BODY)


def post(url, body, header):
    target = urlsplit(url)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=5)
    connection.request("POST", target.path, body, {"Content-Type": "application/json", "CSP-Signature": header})
    status = connection.getresponse().status
    connection.close()
    return status


def test_the_receiver_refuses_tampering_wrong_secrets_and_stale_timestamps_and_acknowledges_retries():
    now = int(time.time())
    tampered = BODY.replace(b"alert.opened", b"alert.resolved")
    with Receiver(secret="whsec_test") as receiver:
        statuses = {
            "delivery": post(receiver.url, BODY, sign("whsec_test", BODY, now)),
            "tampered body": post(receiver.url, tampered, sign("whsec_test", BODY, now)),
            "wrong secret": post(receiver.url, BODY, sign("whsec_other", BODY, now)),
            "stale timestamp": post(receiver.url, BODY, sign("whsec_test", BODY, now - 600)),
            "retry after a lost answer": post(receiver.url, BODY, sign("whsec_test", BODY, now + 1)),
        }

    assert statuses == {
        "delivery": 200,
        "tampered body": 400,
        "wrong secret": 400,
        "stale timestamp": 400,
        "retry after a lost answer": 200,
    }
    assert receiver.processed == ["3f1c"]
    assert [r.split(";")[-1] for r in receiver.refusals] == [
        "The signature does not match the body.",
        "The signature does not match the body.",
        " at most 300 s is accepted.",
    ]


def test_a_task_added_on_the_account_page_and_completed_through_the_api_reaches_its_subscriber(
    client, api, tenant, alice, bob, receiver
):
    subscribe(tenant, receiver.url, event_types=["task.created", "task.completed"])
    account = AccountFactory(tenant=tenant, owner=bob, name="Acme Rockets", external_id="acme")
    client.force_login(alice)
    client.post(
        f"/t/alpha/accounts/{account.pk}/tasks/",
        {"title": "Call the champion", "due": "", "owner": "", "token": "00000000-0000-4000-8000-000000000001"},
    )
    webhook_deliver_due()
    task_id = receiver.requests[0]["json"]["data"]["task"]["id"]

    api.post(f"/api/v1/tasks/{task_id}/complete/")
    api.post(f"/api/v1/tasks/{task_id}/complete/")
    webhook_deliver_due()

    events = [(request["json"]["type"], request["json"]["data"]) for request in receiver.requests]
    assert [event_type for event_type, _ in events] == ["task.created", "task.completed"]
    created, completed = (data["task"] for _, data in events)
    assert (created["title"], created["owner"], created["completed_at"]) == ("Call the champion", "bob@alpha.example", None)
    assert completed["completed_at"] is not None
    assert events[1][1]["account"] == {"id": account.pk, "external_id": "acme", "name": "Acme Rockets"}


def test_alerts_acknowledged_together_each_reach_the_subscriber_once_naming_who(tenant, bob, receiver):
    subscribe(tenant, receiver.url, event_types=["alert.acknowledged"])
    accounts = AccountFactory.create_batch(2, tenant=tenant)
    alerts = [
        Alert.objects.create(tenant=tenant, account=account, title=f"Check {account.name}", opened_at=timezone.now())
        for account in accounts
    ]
    ids = [alert.pk for alert in alerts]

    alerts_acknowledge(tenant=tenant, alert_ids=ids, user=bob, note="Looking")
    alerts_acknowledge(tenant=tenant, alert_ids=ids, user=bob)
    webhook_deliver_due()

    events = sorted((request["json"]["data"]["alert"] for request in receiver.requests), key=lambda alert: alert["id"])
    assert [event["id"] for event in events] == ids
    assert {(event["status"], event["acknowledged_by"], event["note"]) for event in events} == {
        ("acknowledged", "bob@alpha.example", "Looking")
    }


def test_an_owner_handed_over_on_a_page_and_an_mrr_changed_through_the_api_reach_their_subscriber(
    client, api, tenant, alice, bob, receiver
):
    subscribe(tenant, receiver.url, event_types=["account.updated"])
    account = AccountFactory(tenant=tenant, owner=bob, name="Acme Rockets", external_id="acme", mrr=500)
    client.force_login(alice)

    client.post("/t/alpha/accounts/assign/", {"account": [account.pk], "owner": alice.pk})
    for _ in range(2):
        assert api.patch(f"/api/v1/accounts/{account.pk}/", {"mrr": "2400"}, format="json").status_code == 200
    webhook_deliver_due()

    events = [request["json"] for request in receiver.requests]
    assert [event["type"] for event in events] == ["account.updated", "account.updated"]
    handover, expansion = sorted((event["data"] for event in events), key=lambda data: data["change"])
    assert handover["account"] == {"id": account.pk, "external_id": "acme", "name": "Acme Rockets"}
    assert (handover["by"], handover["by_email"]) == ("Alice Admin", "alice@alpha.example")
    assert handover["changes"] == {"owner": {"from": "bob@alpha.example", "to": "alice@alpha.example"}}
    # The unchanged second PATCH changed nothing, and announced nothing.
    assert expansion["changes"] == {"mrr": {"from": "500.00", "to": "2400.00"}}
    assert expansion["change"] == AccountChange.objects.for_tenant(tenant).latest("pk").pk
    assert expansion["at"] == AccountChange.objects.for_tenant(tenant).latest("pk").at.isoformat().replace("+00:00", "Z")


def test_each_change_is_announced_once_however_often_it_is_emitted(tenant, receiver):
    subscribe(tenant, receiver.url, event_types=["account.updated"])
    account_bulk_upsert(tenant=tenant, items=[{"external_id": "acme", "name": "Acme"}])
    account_bulk_upsert(tenant=tenant, items=[{"external_id": "acme", "plan": "team"}])
    (change,) = AccountChange.objects.for_tenant(tenant)

    account_updates_emit(tenant=tenant, change_ids=[change.pk])
    webhook_deliver_due()

    (request,) = receiver.requests
    assert request["json"]["data"]["changes"] == {"plan": {"from": "", "to": "team"}}
    # Changed by an integration's code, not by a member or a key: no one is named.
    assert (request["json"]["data"]["by"], request["json"]["data"]["by_email"]) == ("", None)


def test_a_new_champion_set_on_the_page_and_a_title_sent_by_segment_reach_the_contact_subscriber(
    client, tenant, alice, bob, receiver
):
    subscribe(tenant, receiver.url, event_types=["contact.updated"])
    account = AccountFactory(tenant=tenant, name="Acme Rockets", external_id="acme")
    uma = ContactFactory(account=account, external_id="u-1", name="Uma Chen", email="uma@acme.example", role="user")
    client.force_login(bob)
    client.post(f"/t/alpha/accounts/{account.pk}/contacts/{uma.pk}/", {"title": "Head of Data", "role": "champion"})
    contact_bulk_upsert(tenant=tenant, items=[{"external_id": "u-1", "title": "Head of Data"}])
    webhook_deliver_due()

    (request,) = receiver.requests
    assert request["json"]["type"] == "contact.updated"
    data = request["json"]["data"]
    assert data["account"] == {"id": account.pk, "external_id": "acme", "name": "Acme Rockets"}
    assert data["contact"] == {"id": uma.pk, "external_id": "u-1", "name": "Uma Chen", "email": "uma@acme.example"}
    assert (data["by"], data["by_email"]) == ("Bob CSM", "bob@alpha.example")
    assert data["changes"] == {
        "title": {"from": uma.title, "to": "Head of Data"}, "role": {"from": "user", "to": "champion"}
    }
    assert data["change"] == ContactChange.objects.for_tenant(tenant).get().pk


def test_a_deleted_contact_reaches_the_contact_subscriber_as_it_was(tenant, alice, receiver):
    subscribe(tenant, receiver.url, event_types=["contact.updated"])
    account = AccountFactory(tenant=tenant, name="Acme Rockets", external_id="acme")
    uma = ContactFactory(account=account, external_id="u-1", name="Uma Chen", email="uma@acme.example", role="user")
    contact_id = uma.pk
    contact_delete(tenant=tenant, contact=uma, actor=alice)
    webhook_deliver_due()

    (request,) = receiver.requests
    data = request["json"]["data"]
    assert (request["json"]["type"], data["removed"], data["by"]) == ("contact.updated", True, "Alice Admin")
    assert data["contact"] == {"id": contact_id, "external_id": "u-1", "name": "Uma Chen", "email": "uma@acme.example"}
    assert data["changes"]["role"] == {"from": "user", "to": None}


def test_an_added_contact_reaches_the_contact_subscriber_with_what_it_was_given(tenant, alice, receiver):
    subscribe(tenant, receiver.url, event_types=["contact.updated"])
    account = AccountFactory(tenant=tenant, name="Acme Rockets", external_id="acme")
    uma, _ = contact_upsert(tenant=tenant, external_id="u-1", account=account, fields={"name": "Uma Chen"}, actor=alice)
    webhook_deliver_due()

    (request,) = receiver.requests
    data = request["json"]["data"]
    assert (request["json"]["type"], data["added"], data["removed"]) == ("contact.updated", True, False)
    assert data["contact"] == {"id": uma.pk, "external_id": "u-1", "name": "Uma Chen", "email": ""}
    assert data["changes"]["name"] == {"from": None, "to": "Uma Chen"}


def test_contact_changes_read_nothing_for_a_tenant_without_an_endpoint_for_them(
    tenant, receiver, django_assert_num_queries
):
    subscribe(tenant, receiver.url, event_types=["account.updated"])
    contact = ContactFactory(account=AccountFactory(tenant=tenant))
    change = ContactChange.objects.create(tenant=tenant, contact=contact, account=contact.account,
                                          fields={"role": ["user", "champion"]})

    with django_assert_num_queries(1):
        contact_updates_emit(tenant=tenant, change_ids=[change.pk])


def test_account_changes_read_no_changes_for_a_tenant_without_an_endpoint_for_them(
    tenant, receiver, django_assert_num_queries
):
    subscribe(tenant, receiver.url, event_types=["account.stage_changed"])
    account = AccountFactory(tenant=tenant)
    change = AccountChange.objects.create(tenant=tenant, account=account, fields={"plan": ["", "team"]})

    # A look at the endpoints, and nothing else.
    with django_assert_num_queries(1):
        account_updates_emit(tenant=tenant, change_ids=[change.pk])
