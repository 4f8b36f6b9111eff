import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from csplatform.customers.models import Account

from ..conftest import make_api_client
from ..factories import AccountFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/accounts/"


def stored(tenant, external_id):
    return Account.objects.for_tenant(tenant).get(external_id=external_id)


def listed_ids(response):
    assert response.status_code == 200, response.json()
    return [row["external_id"] for row in response.json()["results"]]


def error_fields(response):
    return {field["field"]: field for field in response.json()["error"]["fields"]}


def test_account_can_be_created_read_updated_and_deleted(api, tenant, alice):
    created = api.post(
        URL,
        {"external_id": "a-1", "name": "Acme", "owner": "Alice@Alpha.example", "mrr": "120.50", "currency": "eur"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["owner"] == "alice@alpha.example"
    assert body["currency"] == "EUR"
    assert stored(tenant, "a-1") in Account.objects.for_tenant(tenant).dirty()

    detail = f"{URL}{body['id']}/"
    assert api.get(detail).json()["name"] == "Acme"

    replaced = api.put(detail, {"external_id": "a-1", "name": "Acme Inc", "plan": "team"}, format="json")
    assert replaced.status_code == 200, replaced.json()
    assert replaced.json()["plan"] == "team"

    patched = api.patch(detail, {"mrr": "99.00", "owner": None}, format="json")
    assert patched.status_code == 200
    assert stored(tenant, "a-1").mrr == Decimal("99.00")
    assert patched.json()["owner"] is None

    assert api.delete(detail).status_code == 204
    assert api.get(detail).status_code == 404


def test_account_list_shows_only_the_keys_tenant_and_pages(api, tenant, other_tenant):
    AccountFactory.create_batch(3, tenant=tenant)
    AccountFactory(tenant=other_tenant, external_id="theirs")
    response = api.get(URL, {"page_size": 2})
    body = response.json()
    assert body["count"] == 3
    assert len(body["results"]) == 2
    assert "theirs" not in listed_ids(api.get(URL))


def test_account_list_reads_owners_in_a_fixed_number_of_queries(api, tenant, alice, bob, django_assert_max_num_queries):
    for index in range(20):
        AccountFactory(tenant=tenant, owner=alice if index % 2 else bob)
    with django_assert_max_num_queries(6):
        response = api.get(URL)
    assert {row["owner"] for row in response.json()["results"]} == {alice.email, bob.email}


def test_account_list_runs_the_same_number_of_queries_for_5_and_50_accounts(api, tenant, alice):
    def queries_of_a_page():
        with CaptureQueriesContext(connection) as queries:
            assert api.get(URL).status_code == 200
        return len(queries.captured_queries)

    AccountFactory.create_batch(5, tenant=tenant, owner=alice)
    api.get(URL)  # the key's last-used time is written at most once a minute
    few = queries_of_a_page()
    AccountFactory.create_batch(45, tenant=tenant, owner=alice)
    assert queries_of_a_page() == few


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"owner": "ALICE@alpha.example"}, ["a1"]),
        ({"plan": "team"}, ["a2"]),
        ({"renewal_before": "2030-02-01"}, ["a1", "a2"]),
        ({"renewal_after": "2030-02-01"}, ["a2", "a3"]),
        ({"renewal_after": "2030-01-15", "renewal_before": "2030-02-15"}, ["a2"]),
        ({"q": "globex"}, ["a2"]),
        ({"q": "initech.example"}, ["a3"]),
        ({"q": "A3"}, ["a3"]),
        ({"ordering": "-mrr"}, ["a3", "a2", "a1"]),
        ({"ordering": "renewal_date"}, ["a1", "a2", "a3"]),
    ],
)
def test_account_list_filters(api, tenant, alice, params, expected):
    AccountFactory(tenant=tenant, external_id="a1", name="Acme", owner=alice, plan="pro", mrr=10,
                   renewal_date=dt.date(2030, 1, 1))
    AccountFactory(tenant=tenant, external_id="a2", name="Globex", plan="team", mrr=20,
                   renewal_date=dt.date(2030, 2, 1))
    AccountFactory(tenant=tenant, external_id="a3", name="Initech", domain="initech.example", plan="pro", mrr=30,
                   renewal_date=dt.date(2030, 3, 1))
    ids = listed_ids(api.get(URL, params))
    if "ordering" not in params:
        ids = sorted(ids)
    assert ids == expected


def test_account_list_filters_by_updated_since(api, tenant):
    old = AccountFactory(tenant=tenant, external_id="old")
    AccountFactory(tenant=tenant, external_id="new")
    Account.objects.for_tenant(tenant).filter(pk=old.pk).update(updated_at=timezone.now() - dt.timedelta(days=3))
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()
    assert listed_ids(api.get(URL, {"updated_since": since})) == ["new"]


def test_bad_filter_value_is_a_400_naming_the_parameter(api, tenant):
    response = api.get(URL, {"updated_since": "last tuesday", "ordering": "password"})
    assert response.status_code == 400
    assert set(error_fields(response)) == {"updated_since", "ordering"}


def test_unknown_field_is_refused_with_its_name(api, tenant):
    response = api.post(URL, {"external_id": "a-1", "name": "Acme", "renewal_data": "2030-01-01"}, format="json")
    assert response.status_code == 400
    assert error_fields(response)["renewal_data"]["message"] == "Unknown field."
    assert not Account.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("currency", "EURO"),
        ("currency", "E1R"),
        ("mrr", "-1"),
        ("mrr", "NaN"),
        ("signup_date", "2030-02-30"),
        ("trial_ends_at", "tomorrow"),
        ("attributes", ["not", "an", "object"]),
    ],
)
def test_invalid_values_are_refused_with_the_field_path(api, tenant, field, value):
    response = api.post(URL, {"external_id": "a-1", "name": "Acme", field: value}, format="json")
    assert response.status_code == 400
    assert field in error_fields(response)


def test_renewal_may_not_precede_the_contract_start(api, tenant):
    account = AccountFactory(tenant=tenant, contract_start=dt.date(2030, 1, 1))
    response = api.patch(f"{URL}{account.pk}/", {"renewal_date": "2029-12-31"}, format="json")
    assert response.status_code == 400
    assert "renewal_date" in error_fields(response)


def test_external_id_is_unique_within_the_tenant_only(api, tenant, other_tenant):
    AccountFactory(tenant=other_tenant, external_id="shared")
    assert api.post(URL, {"external_id": "shared", "name": "Ours"}, format="json").status_code == 201
    again = api.post(URL, {"external_id": "shared", "name": "Again"}, format="json")
    assert again.status_code == 400
    assert "external_id" in error_fields(again)


def test_owner_must_be_a_member_of_the_tenant(api, tenant, charlie):
    response = api.post(URL, {"external_id": "a-1", "name": "Acme", "owner": charlie.email}, format="json")
    assert response.status_code == 400
    assert "owner" in error_fields(response)


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_another_tenants_account_answers_404(api, other_tenant, method):
    theirs = AccountFactory(tenant=other_tenant, name="Theirs")
    response = getattr(api, method)(f"{URL}{theirs.pk}/", {"external_id": "x", "name": "Mine now"}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert Account.objects.for_tenant(other_tenant).get(pk=theirs.pk).name == "Theirs"


@pytest.mark.parametrize("account_id", ["abc", "99999999999999999999"])
def test_a_malformed_or_out_of_range_id_answers_404(api, tenant, account_id):
    assert api.get(f"{URL}{account_id}/").status_code == 404


def test_upsert_checks_the_external_id_in_the_url(api, tenant):
    response = api.put(f"{URL}by-external-id/{'x' * 201}/", {"name": "Acme"}, format="json")
    assert response.status_code == 400
    assert "external_id" in error_fields(response)


def test_read_only_key_cannot_write(tenant):
    reader = make_api_client(tenant, scopes=["read"])
    account = AccountFactory(tenant=tenant)
    assert reader.get(URL).status_code == 200
    assert reader.post(URL, {"external_id": "a-1", "name": "Acme"}, format="json").status_code == 403
    assert reader.patch(f"{URL}{account.pk}/", {"name": "X"}, format="json").status_code == 403
    assert reader.delete(f"{URL}{account.pk}/").status_code == 403
    assert reader.put(f"{URL}by-external-id/a-1/", {"name": "Acme"}, format="json").status_code == 403
    assert reader.post(f"{URL}bulk/", {"items": []}, format="json").status_code == 403
    assert Account.objects.for_tenant(tenant).count() == 1


def test_upsert_by_external_id_creates_then_updates(api, tenant):
    url = f"{URL}by-external-id/crm-42/"
    created = api.put(url, {"name": "Acme", "plan": "pro", "attributes": {"seats": 10}}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["external_id"] == "crm-42"

    updated = api.put(url, {"plan": "team", "attributes": {"region": "eu"}}, format="json")
    assert updated.status_code == 200
    account = stored(tenant, "crm-42")
    assert (account.name, account.plan) == ("Acme", "team")
    assert account.attributes == {"seats": 10, "region": "eu"}
    assert account in Account.objects.for_tenant(tenant).dirty()


def test_upsert_refuses_a_body_external_id_that_differs_from_the_url(api, tenant):
    response = api.put(f"{URL}by-external-id/crm-42/", {"external_id": "crm-43", "name": "Acme"}, format="json")
    assert response.status_code == 400
    assert "external_id" in error_fields(response)
    assert not Account.objects.for_tenant(tenant).exists()


def test_upsert_does_not_touch_another_tenants_account_with_the_same_external_id(api, tenant, other_tenant):
    AccountFactory(tenant=other_tenant, external_id="crm-42", name="Theirs")
    assert api.put(f"{URL}by-external-id/crm-42/", {"name": "Ours"}, format="json").status_code == 201
    assert stored(other_tenant, "crm-42").name == "Theirs"


def test_bulk_upsert_creates_and_updates_and_marks_accounts_dirty(api, tenant, alice):
    AccountFactory(tenant=tenant, external_id="a1", name="Acme", plan="pro", attributes={"seats": 5})
    items = [
        {"external_id": "a1", "plan": "team", "attributes": {"region": "eu"}},
        {"external_id": "a2", "name": "Globex", "owner": "alice@alpha.example", "mrr": "10"},
        {"external_id": "a3"},
    ]
    response = api.post(f"{URL}bulk/", {"items": items}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"created": 2, "updated": 1, "errors": []}
    a1, a2, a3 = (stored(tenant, external_id) for external_id in ("a1", "a2", "a3"))
    assert (a1.name, a1.plan, a1.attributes) == ("Acme", "team", {"seats": 5, "region": "eu"})
    assert (a2.owner, a2.mrr) == (alice, Decimal("10"))
    assert a3.name == "a3"
    assert set(Account.objects.for_tenant(tenant).dirty()) == {a1, a2, a3}


def test_bulk_upsert_reports_bad_items_by_path_and_stores_the_valid_ones(api, tenant, charlie):
    items = [
        {"external_id": "ok-1", "name": "Fine"},
        {"external_id": "bad-mrr", "mrr": "-5"},
        {"external_id": "bad-owner", "owner": charlie.email},
        {"external_id": "ok-1", "name": "Repeated"},
        {"name": "No id"},
        {"external_id": "typo", "nmae": "Oops"},
        "not an object",
        {"external_id": "ok-2"},
    ]
    response = api.post(f"{URL}bulk/", {"items": items}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["updated"]) == (2, 0)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "items[1].mrr"),
        (2, "items[2].owner"),
        (3, "items[3].external_id"),
        (4, "items[4].external_id"),
        (5, "items[5].nmae"),
        (6, "items[6]"),
    ]
    assert set(Account.objects.for_tenant(tenant).values_list("external_id", flat=True)) == {"ok-1", "ok-2"}
    assert stored(tenant, "ok-1").name == "Fine"


def test_bulk_upsert_reports_nul_characters_per_item_and_stores_the_rest(api, tenant):
    items = [
        {"external_id": "a\x00", "name": "Nul id"},
        {"external_id": "a2", "owner": "al\x00ice@example.com"},
        {"external_id": "a3", "name": "Fine"},
    ]
    response = api.post(f"{URL}bulk/", {"items": items}, format="json")

    assert response.status_code == 200
    assert [e["field"] for e in response.json()["errors"]] == ["items[0].external_id", "items[1].owner"]
    assert stored(tenant, "a3").name == "Fine"


def test_bulk_upsert_refuses_more_than_a_thousand_items_with_413(api, tenant):
    items = [{"external_id": f"a{index}"} for index in range(1001)]
    response = api.post(f"{URL}bulk/", {"items": items}, format="json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not Account.objects.for_tenant(tenant).exists()


def test_bulk_upsert_needs_a_list_of_items(api, tenant):
    response = api.post(f"{URL}bulk/", {"items": {"external_id": "a1"}}, format="json")
    assert response.status_code == 400
    assert "items" in error_fields(response)


def test_bulk_upsert_runs_a_fixed_number_of_queries(api, tenant, alice, bob, django_assert_max_num_queries):
    AccountFactory.create_batch(3, tenant=tenant)
    existing = list(Account.objects.for_tenant(tenant).values_list("external_id", flat=True))
    items = [{"external_id": external_id, "plan": "team"} for external_id in existing]
    items += [
        {"external_id": f"new-{index}", "owner": (alice if index % 2 else bob).email, "renewal_date": "2030-01-01"}
        for index in range(200)
    ]
    with django_assert_max_num_queries(16):
        response = api.post(f"{URL}bulk/", {"items": items}, format="json")
    assert response.json()["created"] == 200
    assert response.json()["updated"] == 3
