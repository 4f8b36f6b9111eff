import datetime as dt
import gzip
import json

import pytest
from django.utils import timezone

from csplatform.customers.models import Account, DailyRollup, UsageEvent
from tests.conftest import make_api_client
from tests.factories import AccountFactory, ContactFactory, UsageEventFactory

BATCH_URL = "/api/v1/events/batch"


@pytest.fixture
def account(tenant):
    return AccountFactory(tenant=tenant, external_id="acme")


@pytest.fixture
def contact(account):
    return ContactFactory(account=account, external_id="user-1")


def event(message_id, **overrides):
    item = {
        "message_id": message_id,
        "account": "acme",
        "event": "login",
        "timestamp": "2025-03-01T10:00:00Z",
        "properties": {},
    }
    item.update(overrides)
    return item


def post_batch(client, events, **extra):
    return client.post(BATCH_URL, {"events": events}, format="json", **extra)


def post_raw(client, body, content_type="application/json", **extra):
    return client.generic("POST", BATCH_URL, body, content_type=content_type, **extra)


def stored_events(tenant):
    return UsageEvent.objects.for_tenant(tenant)


def rollup_counts(tenant):
    return {(r.day, r.event, r.contact_ref): r.count for r in DailyRollup.objects.for_tenant(tenant)}


def error_fields(response):
    return {error["field"]: error for error in response.json()["error"]["fields"]}


def test_batch_stores_events_and_reports_counts(api, tenant, account, contact):
    response = post_batch(
        api,
        [
            event("m1", contact="user-1", properties={"seats": 3, "plan": "pro"}),
            event("m2", event="report_exported", timestamp="2025-03-01T11:30:00+02:00"),
        ],
    )

    assert response.status_code == 200, response.content
    assert response.json() == {"stored": 2, "duplicates": 0, "errors": []}
    first = stored_events(tenant).get(message_id="m1")
    assert (first.account, first.contact, first.event) == (account, contact, "login")
    assert first.timestamp == dt.datetime(2025, 3, 1, 10, tzinfo=dt.timezone.utc)
    assert first.properties == {"seats": 3, "plan": "pro"}
    second = stored_events(tenant).get(message_id="m2")
    assert second.timestamp == dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.timezone.utc)


def test_batch_ingest_is_idempotent_on_message_id(api, tenant, account, contact):
    batch = [event(f"m{i}", contact="user-1" if i % 2 else None) for i in range(5)]
    first = post_batch(api, batch)
    counts_after_first = rollup_counts(tenant)

    replies = [post_batch(api, batch) for _ in range(9)]

    assert first.json() == {"stored": 5, "duplicates": 0, "errors": []}
    assert all(reply.json() == {"stored": 0, "duplicates": 5, "errors": []} for reply in replies)
    assert stored_events(tenant).count() == 5
    assert rollup_counts(tenant) == counts_after_first
    assert sum(counts_after_first.values()) == 5


def test_a_retried_batch_with_new_items_stores_only_the_new_ones(api, tenant, account):
    post_batch(api, [event("m1"), event("m2")])

    response = post_batch(api, [event("m1"), event("m2"), event("m3")])

    assert response.json() == {"stored": 1, "duplicates": 2, "errors": []}
    assert rollup_counts(tenant)[(dt.date(2025, 3, 1), "login", 0)] == 3


def test_ids_and_names_are_stored_without_surrounding_spaces(api, tenant, account, contact):
    response = post_batch(api, [event(" m1 ", account="acme ", contact=" user-1", event="login ")])

    assert response.json() == {"stored": 1, "duplicates": 0, "errors": []}
    stored = stored_events(tenant).get()
    assert (stored.message_id, stored.account, stored.contact, stored.event) == ("m1", account, contact, "login")


def test_invalid_items_are_reported_with_their_path_while_valid_items_are_stored(api, tenant, account):
    response = post_batch(
        api,
        [
            event("ok-1"),
            event("bad-type", event=42),
            event("bad-time", timestamp="yesterday"),
            event("naive-time", timestamp="2025-03-01T10:00:00"),
            event("nul", event="log\u0000in"),
            event("huge", properties={"n": 10**30}),
            event("not-object", properties=["a"]),
            {**event("extra"), "colour": "red"},
            {"account": "acme", "event": "login", "timestamp": "2025-03-01T10:00:00Z"},
            "not an object",
            event("ok-2"),
        ],
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["stored"], body["duplicates"]) == (2, 0)
    by_field = {error["field"]: error for error in body["errors"]}
    assert set(by_field) == {
        "events[1].event",
        "events[2].timestamp",
        "events[3].timestamp",
        "events[4].event",
        "events[5].properties",
        "events[6].properties",
        "events[7].colour",
        "events[8].message_id",
        "events[9]",
    }
    assert by_field["events[7].colour"]["code"] == "unknown_field"
    assert by_field["events[8].message_id"]["code"] == "required"
    assert [error["index"] for error in body["errors"]] == sorted(error["index"] for error in body["errors"])
    assert set(stored_events(tenant).values_list("message_id", flat=True)) == {"ok-1", "ok-2"}


def test_strings_postgresql_cannot_store_are_refused_per_item(api, tenant, account):
    body = json.dumps(
        {
            "events": [
                {**event("surrogate-field-name"), "\ud800": 1},
                event("surrogate-value", properties={"note": "\udfff"}),
                event("nul-in-key", properties={"a\u0000b": 1}),
                event("ok"),
            ]
        }
    )

    response = post_raw(api, body)

    assert response.status_code == 200
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [
        ("events[0].\\ud800", "unknown_field"),
        ("events[1].properties", "invalid"),
        ("events[2].properties", "invalid"),
    ]
    assert list(stored_events(tenant).values_list("message_id", flat=True)) == ["ok"]


def test_a_batch_with_no_valid_item_answers_400_with_each_item_path(api, tenant, account):
    response = post_batch(api, [event("m1", timestamp="soon"), event("m2", account="nobody")])

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    fields = error_fields(response)
    assert set(fields) == {"events[0].timestamp", "events[1].account"}
    assert fields["events[1].account"] == {
        "field": "events[1].account",
        "code": "unknown_account",
        "message": "unknown account",
    }
    assert not stored_events(tenant).exists()


def test_unknown_account_is_a_per_item_error(api, tenant, account):
    response = post_batch(api, [event("m1"), event("m2", account="ghost")])

    assert response.json()["stored"] == 1
    assert response.json()["errors"] == [
        {"index": 1, "field": "events[1].account", "code": "unknown_account", "message": "unknown account"}
    ]


def test_unknown_contact_and_contact_of_another_account_are_per_item_errors(api, tenant, account, contact):
    other_contact = ContactFactory(account=AccountFactory(tenant=tenant), external_id="elsewhere")

    response = post_batch(
        api,
        [event("m1", contact="user-1"), event("m2", contact="ghost"), event("m3", contact=other_contact.external_id)],
    )

    assert response.json()["stored"] == 1
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [
        ("events[1].contact", "unknown_contact"),
        ("events[2].contact", "invalid"),
    ]


def test_repeated_message_id_in_one_batch_refuses_the_later_item(api, tenant, account):
    response = post_batch(api, [event("m1", event="first"), event("m2"), event("m1", event="second")])

    assert response.json()["stored"] == 2
    assert response.json()["errors"] == [
        {
            "index": 2,
            "field": "events[2].message_id",
            "code": "duplicate_in_batch",
            "message": "Repeats the id of item 0 in this batch.",
        }
    ]
    assert stored_events(tenant).get(message_id="m1").event == "first"


def test_timestamps_too_far_in_the_future_are_refused(api, tenant, account, settings):
    settings.CSP_INGEST_MAX_FUTURE_SECONDS = 3600
    now = timezone.now()
    soon = (now + dt.timedelta(minutes=30)).isoformat()
    later = (now + dt.timedelta(hours=2)).isoformat()

    response = post_batch(api, [event("soon", timestamp=soon), event("later", timestamp=later)])

    assert response.json()["stored"] == 1
    [error] = response.json()["errors"]
    assert (error["field"], error["code"]) == ("events[1].timestamp", "in_future")
    assert "3600 seconds" in error["message"]


def test_too_many_items_answers_413(api, tenant, account, settings):
    settings.CSP_INGEST_MAX_ITEMS = 3

    response = post_batch(api, [event(f"m{i}") for i in range(4)])

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert "At most 3 items" in response.json()["error"]["message"]
    assert not stored_events(tenant).exists()


def test_body_over_the_byte_limit_answers_413(api, tenant, account, settings):
    settings.CSP_INGEST_MAX_BYTES = 2000
    body = json.dumps({"events": [event(f"m{i}", properties={"note": "x" * 100}) for i in range(20)]})
    assert len(body) > 2000

    response = post_raw(api, body)

    assert response.status_code == 413
    assert response.json()["error"]["status"] == 413
    assert not stored_events(tenant).exists()


def test_declared_content_length_over_the_limit_answers_413_before_reading(api, settings):
    settings.CSP_INGEST_MAX_BYTES = 2000

    response = post_raw(api, json.dumps({"events": [event("m1")]}), CONTENT_LENGTH="5000000")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_gzip_body_is_limited_after_decompression(api, tenant, account, settings):
    settings.CSP_INGEST_MAX_BYTES = 2000
    small = gzip.compress(json.dumps({"events": [event("m1")]}).encode())
    bomb = gzip.compress(json.dumps({"events": [event("m1", properties={"pad": " " * 100_000})]}).encode())
    assert len(bomb) < 2000

    accepted = post_raw(api, small, HTTP_CONTENT_ENCODING="gzip")
    refused = post_raw(api, bomb, HTTP_CONTENT_ENCODING="gzip")

    assert accepted.json()["stored"] == 1
    assert refused.status_code == 413


@pytest.mark.parametrize(
    "body",
    ['{"events": [', "not json", '{"events": [NaN]}', "[" * 100_000, b"\xff\xfe\x00garbage"],
    ids=["truncated", "text", "nan", "deeply-nested", "bad-encoding"],
)
def test_malformed_json_answers_400_in_the_error_format(api, body):
    response = post_raw(api, body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "parse_error"
    assert error["message"].startswith("JSON parse error")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], None),
        ({"items": []}, "items"),
        ({"events": {"message_id": "m1"}}, "events"),
        ({"events": []}, "events"),
    ],
    ids=["not-an-object", "unknown-top-level-field", "events-not-a-list", "empty"],
)
def test_a_malformed_batch_answers_400_with_the_field(api, body, field):
    response = post_raw(api, json.dumps(body))

    assert response.status_code == 400
    assert [f["field"] for f in response.json()["error"]["fields"]] == [field]


def test_non_json_content_type_answers_415(api):
    response = post_raw(api, "events=1", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_key_without_ingest_scope_is_refused_with_403(tenant, account):
    client = make_api_client(tenant, scopes=["read", "write"])

    response = post_batch(client, [event("m1")])

    assert response.status_code == 403
    assert "ingest" in response.json()["error"]["message"]
    assert not stored_events(tenant).exists()


def test_batch_without_a_key_is_refused_with_401(client):
    response = client.post(BATCH_URL, {"events": []}, content_type="application/json")

    assert response.status_code == 401


def test_another_tenants_key_cannot_write_into_this_tenant(other_api, tenant, other_tenant, account):
    only_here = post_batch(other_api, [event("m1")])
    twin = AccountFactory(tenant=other_tenant, external_id="acme")
    same_external_id = post_batch(other_api, [event("m2")])

    assert only_here.status_code == 400
    assert error_fields(only_here)["events[0].account"]["code"] == "unknown_account"
    assert same_external_id.json()["stored"] == 1
    assert not stored_events(tenant).exists()
    assert stored_events(other_tenant).get().account == twin


def test_message_ids_are_unique_per_tenant_not_globally(api, other_api, tenant, other_tenant, account):
    AccountFactory(tenant=other_tenant, external_id="acme")

    assert post_batch(api, [event("shared")]).json()["stored"] == 1
    assert post_batch(other_api, [event("shared")]).json()["stored"] == 1


def test_ingest_updates_contact_last_seen_and_marks_the_account_dirty(api, tenant, account, contact):
    post_batch(
        api,
        [
            event("m1", contact="user-1", timestamp="2025-03-01T10:00:00Z"),
            event("m2", contact="user-1", timestamp="2025-03-03T08:00:00Z"),
            event("m3", contact="user-1", timestamp="2025-03-02T10:00:00Z"),
        ],
    )

    contact.refresh_from_db()
    assert contact.last_seen_at == dt.datetime(2025, 3, 3, 8, tzinfo=dt.timezone.utc)
    assert account in Account.objects.for_tenant(tenant).dirty()


def test_ingest_stores_events_while_redis_is_down(api, tenant, account, settings):
    # Nothing listens on port 1: the throttle's cache calls fail as in a Redis outage.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }

    response = post_batch(api, [event("m1")])

    assert response.status_code == 200
    assert stored_events(tenant).get().message_id == "m1"


def test_the_batch_url_works_with_a_trailing_slash(api, account):
    response = api.post(BATCH_URL + "/", {"events": [event("m1")]}, format="json")

    assert response.json()["stored"] == 1


class TestAccountEventList:
    def url(self, account):
        return f"/api/v1/accounts/{account.pk}/events/"

    def test_lists_the_accounts_events_newest_first_in_cursor_pages(self, api, tenant, account, contact):
        start = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
        for hour in range(5):
            timestamp = start + dt.timedelta(hours=hour)
            UsageEventFactory(account=account, contact=contact, message_id=f"m{hour}", timestamp=timestamp)
        UsageEventFactory(account=AccountFactory(tenant=tenant), message_id="other-account")

        first = api.get(self.url(account), {"page_size": 3})
        second = api.get(first.json()["next"])

        assert first.status_code == 200
        assert [e["message_id"] for e in first.json()["results"]] == ["m4", "m3", "m2"]
        assert [e["message_id"] for e in second.json()["results"]] == ["m1", "m0"]
        assert second.json()["next"] is None
        assert first.json()["results"][0]["contact"] == "user-1"

    def test_filters_by_event_name_and_time_range(self, api, account):
        start = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
        for day in range(4):
            timestamp = start + dt.timedelta(days=day)
            UsageEventFactory(account=account, message_id=f"login-{day}", event="login", timestamp=timestamp)
            UsageEventFactory(account=account, message_id=f"export-{day}", event="export", timestamp=timestamp)

        response = api.get(
            self.url(account), {"event": "login", "since": "2025-03-02T00:00:00Z", "until": "2025-03-04T00:00:00Z"}
        )

        assert [e["message_id"] for e in response.json()["results"]] == ["login-2", "login-1"]

    def test_invalid_filter_answers_400_with_the_field(self, api, account):
        response = api.get(self.url(account), {"since": "last tuesday"})

        assert response.status_code == 400
        assert [f["field"] for f in response.json()["error"]["fields"]] == ["since"]

    def test_another_tenants_account_answers_404(self, api, other_tenant):
        foreign = AccountFactory(tenant=other_tenant)
        UsageEventFactory(account=foreign)

        response = api.get(self.url(foreign))

        assert response.status_code == 404
        assert "results" not in response.json()
