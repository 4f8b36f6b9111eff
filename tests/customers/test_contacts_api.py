import datetime as dt
import json

import pytest
from django.utils import timezone

from csplatform.customers.models import Account, Contact, DirtyAccount

from ..conftest import make_api_client
from ..factories import AccountFactory, ContactFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/contacts/"


def stored(tenant, external_id):
    return Contact.objects.for_tenant(tenant).select_related("account").get(external_id=external_id)


def is_dirty(tenant, account):
    return Account.objects.for_tenant(tenant).dirty().filter(pk=account.pk).exists()


def listed_ids(response):
    assert response.status_code == 200, response.json()
    return sorted(row["external_id"] for row in response.json()["results"])


def error_fields(response):
    return {field["field"]: field for field in response.json()["error"]["fields"]}


def test_contact_can_be_created_read_updated_and_deleted(api, tenant):
    acme = AccountFactory(tenant=tenant, external_id="acme")
    globex = AccountFactory(tenant=tenant, external_id="globex")
    created = api.post(
        URL, {"external_id": "c-1", "account": "acme", "email": "ann@acme.example", "role": "champion"}, format="json"
    )
    assert created.status_code == 201, created.json()
    assert created.json()["account"] == "acme"
    assert is_dirty(tenant, acme)

    detail = f"{URL}{created.json()['id']}/"
    assert api.get(detail).json()["email"] == "ann@acme.example"

    moved = api.patch(detail, {"account": "globex", "title": "CTO"}, format="json")
    assert moved.status_code == 200
    assert stored(tenant, "c-1").account == globex
    assert is_dirty(tenant, globex)

    replaced = api.put(detail, {"external_id": "c-1", "account": "globex", "name": "Ann"}, format="json")
    assert replaced.status_code == 200
    assert replaced.json()["name"] == "Ann"

    DirtyAccount.objects.for_tenant(tenant).delete()
    assert api.delete(detail).status_code == 204
    assert api.get(detail).status_code == 404
    assert is_dirty(tenant, globex)


def test_contact_list_shows_only_the_keys_tenant(api, tenant, other_tenant):
    ContactFactory.create_batch(2, account=AccountFactory(tenant=tenant))
    ContactFactory(account=AccountFactory(tenant=other_tenant), external_id="theirs")
    assert api.get(URL).json()["count"] == 2


def test_contact_list_reads_accounts_in_a_fixed_number_of_queries(api, tenant, django_assert_max_num_queries):
    for index in range(10):
        ContactFactory(account=AccountFactory(tenant=tenant, external_id=f"acct-{index}"))
    with django_assert_max_num_queries(6):
        response = api.get(URL)
    assert {row["account"] for row in response.json()["results"]} == {f"acct-{index}" for index in range(10)}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"account": "acme"}, ["c1", "c2"]),
        ({"role": "billing"}, ["c2"]),
        ({"email": "ANN@acme.example"}, ["c1"]),
        ({"q": "carol"}, ["c3"]),
        ({"q": "acme.example"}, ["c1", "c2"]),
    ],
)
def test_contact_list_filters(api, tenant, params, expected):
    acme = AccountFactory(tenant=tenant, external_id="acme")
    ContactFactory(account=acme, external_id="c1", email="ann@acme.example", name="Ann", role="champion")
    ContactFactory(account=acme, external_id="c2", email="ben@acme.example", name="Ben", role="billing")
    ContactFactory(account=AccountFactory(tenant=tenant), external_id="c3", email="c@other.example", name="Carol")
    assert listed_ids(api.get(URL, params)) == expected


def test_contact_list_filters_by_updated_since_and_orders(api, tenant):
    old = ContactFactory(account=AccountFactory(tenant=tenant), external_id="old", name="Zed")
    ContactFactory(account=old.account, external_id="new", name="Amy")
    Contact.objects.for_tenant(tenant).filter(pk=old.pk).update(updated_at=timezone.now() - dt.timedelta(days=3))
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()
    assert listed_ids(api.get(URL, {"updated_since": since})) == ["new"]
    ordered = api.get(URL, {"ordering": "-name"}).json()["results"]
    assert [row["external_id"] for row in ordered] == ["old", "new"]


def test_unknown_role_is_a_400(api, tenant):
    response = api.get(URL, {"role": "overlord"})
    assert response.status_code == 400
    assert "role" in error_fields(response)


def test_contact_may_not_reference_another_tenants_account(api, tenant, other_tenant):
    AccountFactory(tenant=other_tenant, external_id="their-account")
    response = api.post(URL, {"external_id": "c-1", "account": "their-account"}, format="json")
    assert response.status_code == 400
    assert "account" in error_fields(response)
    bulk = api.post(f"{URL}bulk/", {"items": [{"external_id": "c-1", "account": "their-account"}]}, format="json")
    assert [e["field"] for e in bulk.json()["errors"]] == ["items[0].account"]
    assert not Contact.objects.for_tenant(tenant).exists()


def test_unknown_field_is_refused_with_its_name(api, tenant):
    AccountFactory(tenant=tenant, external_id="acme")
    response = api.post(URL, {"external_id": "c-1", "account": "acme", "phone": "555"}, format="json")
    assert response.status_code == 400
    assert "phone" in error_fields(response)


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_another_tenants_contact_answers_404(api, other_tenant, method):
    theirs = ContactFactory(account=AccountFactory(tenant=other_tenant), name="Theirs")
    response = getattr(api, method)(f"{URL}{theirs.pk}/", {"name": "Mine now"}, format="json")
    assert response.status_code == 404
    assert Contact.objects.for_tenant(other_tenant).get(pk=theirs.pk).name == "Theirs"


def test_read_only_key_cannot_write(tenant):
    reader = make_api_client(tenant, scopes=["read"])
    contact = ContactFactory(account=AccountFactory(tenant=tenant, external_id="acme"))
    assert reader.get(f"{URL}{contact.pk}/").status_code == 200
    assert reader.post(URL, {"external_id": "c-9", "account": "acme"}, format="json").status_code == 403
    assert reader.delete(f"{URL}{contact.pk}/").status_code == 403
    assert reader.put(f"{URL}by-external-id/c-9/", {"account": "acme"}, format="json").status_code == 403
    assert Contact.objects.for_tenant(tenant).count() == 1


def test_upsert_by_external_id_needs_an_account_only_to_create(api, tenant):
    acme = AccountFactory(tenant=tenant, external_id="acme")
    url = f"{URL}by-external-id/c-1/"
    missing = api.put(url, {"email": "ann@acme.example"}, format="json")
    assert missing.status_code == 400
    assert "account" in error_fields(missing)

    created = api.put(url, {"account": "acme", "email": "ann@acme.example", "attributes": {"a": 1}}, format="json")
    assert created.status_code == 201, created.json()
    updated = api.put(url, {"name": "Ann", "attributes": {"b": 2}}, format="json")
    assert updated.status_code == 200
    contact = stored(tenant, "c-1")
    assert (contact.account, contact.name, contact.attributes) == (acme, "Ann", {"a": 1, "b": 2})


def test_bulk_upsert_reports_bad_items_and_stores_the_valid_ones(api, tenant):
    acme = AccountFactory(tenant=tenant, external_id="acme")
    globex = AccountFactory(tenant=tenant, external_id="globex")
    ContactFactory(account=acme, external_id="existing", name="Old")
    DirtyAccount.objects.for_tenant(tenant).delete()
    items = [
        {"external_id": "existing", "account": "globex", "name": "Moved"},
        {"external_id": "new-1", "account": "acme", "role": "billing"},
        {"external_id": "new-2"},
        {"external_id": "new-3", "account": "acme", "role": "king"},
        {"external_id": "new-4", "account": "nowhere"},
        {"external_id": "new-1", "account": "acme"},
    ]
    response = api.post(f"{URL}bulk/", {"items": items}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["updated"]) == (1, 1)
    assert [e["field"] for e in body["errors"]] == [
        "items[2].account",
        "items[3].role",
        "items[4].account",
        "items[5].external_id",
    ]
    assert stored(tenant, "existing").account == globex
    assert stored(tenant, "new-1").role == "billing"
    assert is_dirty(tenant, acme)
    assert is_dirty(tenant, globex)


def test_bulk_upsert_reports_nul_characters_and_lone_surrogates_per_item(api, tenant):
    AccountFactory(tenant=tenant, external_id="acme")
    items = [
        {"external_id": "c\x00-1", "account": "acme"},
        {"external_id": "c-2", "account": "ac\x00me"},
        {"external_id": "c-\ud800", "account": "acme"},
        {"external_id": "c-3", "account": "acme", "name": "Fine"},
    ]
    # Sent as bytes: the test client cannot encode a lone surrogate, a client's JSON escape can.
    response = api.post(f"{URL}bulk/", json.dumps({"items": items}), content_type="application/json")

    assert response.status_code == 200
    assert (response.json()["created"], [e["field"] for e in response.json()["errors"]]) == (
        1,
        ["items[0].external_id", "items[1].account", "items[2].external_id"],
    )
    assert stored(tenant, "c-3").name == "Fine"


def test_bulk_upsert_refuses_more_than_a_thousand_items_with_413(api, tenant):
    items = [{"external_id": f"c{index}", "account": "acme"} for index in range(1001)]
    response = api.post(f"{URL}bulk/", {"items": items}, format="json")
    assert response.status_code == 413


def test_bulk_upsert_runs_a_fixed_number_of_queries(api, tenant, django_assert_max_num_queries):
    accounts = [AccountFactory(tenant=tenant, external_id=f"acct-{index}") for index in range(5)]
    ContactFactory(account=accounts[0], external_id="c-existing")
    items = [{"external_id": "c-existing", "account": "acct-1"}]
    items += [{"external_id": f"c-{index}", "account": f"acct-{index % 5}"} for index in range(200)]
    with django_assert_max_num_queries(16):
        response = api.post(f"{URL}bulk/", {"items": items}, format="json")
    assert (response.json()["created"], response.json()["updated"]) == (200, 1)
