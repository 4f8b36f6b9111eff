import base64
import datetime as dt
import gzip
import json
from decimal import Decimal

import pytest
from rest_framework.test import APIClient
from segment import analytics
from segment.analytics import request as segment_request

from csplatform.customers.models import Account, Contact, DailyRollup, UsageEvent
from csplatform.tenancy.services import api_key_create
from tests.factories import AccountFactory, ContactFactory

SEGMENT = "/api/segment/v1"


def segment_client(tenant, scopes=("ingest",)):
    """An HTTP client that authenticates as Segment SDKs do: the write key as Basic user name."""
    _, raw_key = api_key_create(tenant=tenant, name="segment", scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{raw_key}:".encode()).decode())
    return client


@pytest.fixture
def segment(tenant):
    return segment_client(tenant)


@pytest.fixture
def account(tenant):
    return AccountFactory(tenant=tenant, external_id="acme")


def post(client, endpoint, body, **extra):
    return client.post(f"{SEGMENT}/{endpoint}", body, format="json", **extra)


def track(message_id, **overrides):
    message = {
        "type": "track",
        "messageId": message_id,
        "userId": "u-1",
        "event": "report_exported",
        "timestamp": "2025-03-01T10:00:00.000Z",
        "context": {"groupId": "acme"},
        "properties": {"rows": 10},
    }
    message.update(overrides)
    return message


@pytest.mark.django_db(transaction=True)
def test_the_segment_python_sdk_delivers_group_identify_track_and_page(live_server, tenant, monkeypatch):
    # Without keep-alive each server thread ends with its response, not after the
    # live server has stopped sharing the test's in-memory SQLite connection.
    monkeypatch.setitem(segment_request._session.headers, "Connection", "close")
    _, raw_key = api_key_create(tenant=tenant, name="segment sdk", scopes=["ingest"])
    failures = []
    client = analytics.Client(
        write_key=raw_key,
        host=f"{live_server.url}/api/segment",
        gzip=True,
        max_retries=0,
        on_error=lambda error, batch: failures.append(error),
    )
    sent_at = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.timezone.utc)

    client.group(
        user_id="u-1", group_id="acme", traits={"name": "Acme Inc", "plan": "pro", "mrr": 499, "industry": "retail"}
    )
    client.identify(
        user_id="u-1", traits={"email": "ada@acme.example", "name": "Ada", "title": "CTO", "company": {"id": "acme"}}
    )
    client.track(
        user_id="u-1",
        event="report_exported",
        properties={"rows": 120},
        context={"groupId": "acme"},
        timestamp=sent_at,
        message_id="sdk-track-1",
    )
    client.page(user_id="u-1", name="Dashboard", timestamp=sent_at, message_id="sdk-page-1")
    client.flush()
    client.join()

    assert failures == []
    account = Account.objects.for_tenant(tenant).get(external_id="acme")
    assert (account.name, account.plan, account.mrr) == ("Acme Inc", "pro", Decimal("499"))
    assert account.attributes == {"industry": "retail"}
    contact = Contact.objects.for_tenant(tenant).get(external_id="u-1")
    assert (contact.account, contact.email, contact.name, contact.title) == (account, "ada@acme.example", "Ada", "CTO")
    events = {e.message_id: e for e in UsageEvent.objects.for_tenant(tenant)}
    assert set(events) == {"sdk-track-1", "sdk-page-1"}
    assert (events["sdk-track-1"].event, events["sdk-track-1"].properties) == ("report_exported", {"rows": 120})
    assert events["sdk-track-1"].timestamp == sent_at
    assert events["sdk-page-1"].event == "page_viewed"
    assert events["sdk-page-1"].properties == {"name": "Dashboard"}
    assert all(e.account == account and e.contact == contact for e in events.values())
    contact.refresh_from_db()
    assert contact.last_seen_at == sent_at
    assert DailyRollup.objects.for_tenant(tenant).filter(event="report_exported").get().count == 1


def test_batch_applies_groups_and_identifies_before_events(segment, tenant):
    response = post(
        segment,
        "batch",
        {
            "batch": [
                track("t-1"),
                {"type": "identify", "userId": "u-1", "traits": {"email": "ada@acme.example"}},
                {"type": "group", "userId": "u-1", "groupId": "acme", "traits": {"name": "Acme"}},
            ],
            "sentAt": "2025-03-01T10:00:01Z",
            "writeKey": "ignored",
        },
    )

    assert response.status_code == 200, response.content
    assert response.json() == {"success": True, "stored": 1, "duplicates": 0, "errors": []}
    event = UsageEvent.objects.for_tenant(tenant).get()
    assert event.account.external_id == "acme"
    assert event.contact.external_id == "u-1"


def test_track_without_group_uses_the_contacts_account(segment, tenant, account):
    ContactFactory(account=account, external_id="u-1")

    response = post(segment, "track", {**track("t-1"), "context": {}})

    assert response.json()["stored"] == 1
    assert UsageEvent.objects.for_tenant(tenant).get().account == account


def test_group_maps_account_fields_and_keeps_other_traits_as_attributes(segment, tenant, account):
    account.attributes = {"region": "eu"}
    account.save()

    response = post(
        segment,
        "group",
        {
            "groupId": "acme",
            "traits": {"plan": "team", "mrr": "1250.50", "renewal_date": "2026-01-31", "employees": 40},
        },
    )

    assert response.status_code == 200, response.content
    account.refresh_from_db()
    assert (account.plan, account.mrr, account.renewal_date) == ("team", Decimal("1250.50"), dt.date(2026, 1, 31))
    assert account.attributes == {"region": "eu", "employees": 40}
    assert account in Account.objects.for_tenant(tenant).dirty()


def test_invalid_group_traits_answer_400_with_the_trait_path(segment, tenant):
    response = post(segment, "group", {"groupId": "acme", "traits": {"mrr": "lots", "signup_date": "soon"}})

    assert response.status_code == 400
    assert {f["field"] for f in response.json()["error"]["fields"]} == {"traits.mrr", "traits.signup_date"}
    assert not Account.objects.for_tenant(tenant).exists()


def test_identify_creates_the_account_from_company_traits(segment, tenant):
    response = post(
        segment,
        "identify",
        {
            "userId": "u-9",
            "traits": {
                "firstName": "Grace",
                "lastName": "Hopper",
                "role": "champion",
                "company": {"id": "navy", "name": "US Navy"},
            },
        },
    )

    assert response.status_code == 200, response.content
    contact = Contact.objects.for_tenant(tenant).get(external_id="u-9")
    assert (contact.name, contact.role) == ("Grace Hopper", "champion")
    assert (contact.account.external_id, contact.account.name) == ("navy", "US Navy")
    assert contact.attributes == {"firstName": "Grace", "lastName": "Hopper"}


def test_identify_of_an_existing_contact_keeps_its_account_and_the_name_its_traits_leave_out(segment, tenant, account):
    ContactFactory(account=account, external_id="u-1", name="Ada Lovelace", title="")

    response = post(segment, "identify", {"userId": "u-1", "traits": {"title": "VP Eng", "shoe_size": 44}})

    assert response.status_code == 200, response.content
    contact = Contact.objects.for_tenant(tenant).get(external_id="u-1")
    assert (contact.account, contact.title, contact.attributes) == (account, "VP Eng", {"shoe_size": 44})
    assert contact.name == "Ada Lovelace"


def test_identify_of_a_new_contact_without_account_is_an_error(segment, tenant):
    response = post(segment, "identify", {"userId": "u-new", "traits": {"email": "x@example.com"}})

    assert response.status_code == 400
    [field] = response.json()["error"]["fields"]
    assert (field["field"], field["code"]) == ("context.groupId", "unknown_account")
    assert not Contact.objects.for_tenant(tenant).exists()


def test_page_is_stored_as_page_viewed(segment, tenant, account):
    response = post(
        segment, "page", {"userId": "u-1", "name": "Billing", "category": "settings", "context": {"groupId": "acme"}}
    )

    assert response.status_code == 200, response.content
    event = UsageEvent.objects.for_tenant(tenant).get()
    assert (event.event, event.properties) == ("page_viewed", {"name": "Billing", "category": "settings"})


def test_batch_reports_invalid_messages_and_stores_the_valid_ones(segment, tenant, account):
    response = post(
        segment,
        "batch",
        {
            "batch": [
                track("t-1"),
                track("t-2", context={"groupId": "unknown"}),
                track("t-3", event=""),
                {"type": "alias", "userId": "u-1", "previousId": "anon"},
                track("t-1", event="again"),
                track("t-4", timestamp="2999-01-01T00:00:00Z"),
                track("t-5", properties={"big": 2**60}),
            ]
        },
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["success"], body["stored"]) == (True, 1)
    assert [(e["field"], e["code"]) for e in body["errors"]] == [
        ("batch[1].context.groupId", "unknown_account"),
        ("batch[2].event", "blank"),
        ("batch[3].type", "invalid"),
        ("batch[4].messageId", "duplicate_in_batch"),
        ("batch[5].timestamp", "in_future"),
        ("batch[6].properties", "invalid"),
    ]


def test_track_ids_may_be_numbers_and_are_stored_without_surrounding_spaces(segment, tenant, account):
    contact = ContactFactory(account=account, external_id="42")

    response = post(segment, "batch", {"batch": [track(" t-1 ", userId=42, anonymousId=None, event=" login ")]})

    assert response.json()["stored"] == 1, response.content
    stored = UsageEvent.objects.for_tenant(tenant).get()
    assert (stored.message_id, stored.contact, stored.event) == ("t-1", contact, "login")


def test_replayed_batch_stores_nothing_twice(segment, tenant, account):
    batch = {"batch": [track(f"t-{i}") for i in range(3)]}

    first = post(segment, "batch", batch)
    again = post(segment, "import", batch)

    assert (first.json()["stored"], first.json()["duplicates"]) == (3, 0)
    assert (again.json()["stored"], again.json()["duplicates"]) == (0, 3)
    assert DailyRollup.objects.for_tenant(tenant).get().count == 3


def test_gzip_bodies_are_accepted(segment, tenant, account):
    body = gzip.compress(json.dumps({"batch": [track("t-1")]}).encode())

    response = segment.generic(
        "POST", f"{SEGMENT}/batch", body, content_type="application/json", HTTP_CONTENT_ENCODING="gzip"
    )

    assert response.json()["stored"] == 1


def test_a_text_plain_body_is_read_as_json(segment, tenant, account):
    response = segment.generic("POST", f"{SEGMENT}/track", json.dumps(track("t-1")), content_type="text/plain")

    assert response.json()["stored"] == 1


def test_oversize_batch_answers_413(segment, settings, account):
    settings.CSP_INGEST_MAX_ITEMS = 2

    response = post(segment, "batch", {"batch": [track(f"t-{i}") for i in range(3)]})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_malformed_json_answers_400(segment):
    response = segment.generic("POST", f"{SEGMENT}/batch", "{oops", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic " + base64.b64encode(b"csp_not-a-key:").decode(), "Basic %%%"],
    ids=["missing", "unknown-key", "malformed"],
)
def test_requests_without_a_valid_write_key_answer_401(tenant, authorization):
    client = APIClient()
    if authorization:
        client.credentials(HTTP_AUTHORIZATION=authorization)

    response = post(client, "track", track("t-1"))

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="segment"'


def test_write_key_without_ingest_scope_answers_403(tenant, account):
    client = segment_client(tenant, scopes=["read", "write"])

    response = post(client, "track", track("t-1"))

    assert response.status_code == 403
    assert not UsageEvent.objects.for_tenant(tenant).exists()


def test_another_tenants_write_key_resolves_ids_only_in_its_own_tenant(tenant, other_tenant, account):
    ContactFactory(account=account, external_id="u-1")
    outsider = segment_client(other_tenant)

    tracked = post(outsider, "track", track("t-1"))
    grouped = post(outsider, "group", {"groupId": "acme", "traits": {"plan": "free"}})

    assert tracked.status_code == 400
    assert tracked.json()["error"]["fields"][0]["code"] == "unknown_account"
    assert grouped.status_code == 200
    account.refresh_from_db()
    assert account.plan == "pro"
    assert Account.objects.for_tenant(other_tenant).get().plan == "free"
    assert not UsageEvent.objects.for_tenant(tenant).exists()
