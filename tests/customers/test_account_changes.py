"""Who changed an account's owner or details, from what to what: the account's story keeps every write that
changed something, from the pages, the API, the Segment API and imports alike."""

import base64
import datetime as dt
import io

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from rest_framework.test import APIClient

from csplatform.customers.models import AccountChange

from ..conftest import make_api_client
from ..factories import AccountFactory, UserFactory
from .conftest import key_label, story_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(tenant, bob):
    return AccountFactory(tenant=tenant, external_id="acme", name="Acme", plan="pro", mrr=500, owner=bob)


def changes_of(client, account):
    return story_of(client, account, "change")


def test_correcting_details_on_the_account_page_records_what_changed_and_who_changed_it(client, bob, account, api):
    client.force_login(bob)
    details = {"name": "Acme", "domain": account.domain, "plan": "enterprise", "mrr": "2400", "currency": "USD",
               "signup_date": account.signup_date.isoformat(), "renewal_date": "2027-03-01"}

    client.post(f"/t/alpha/accounts/{account.pk}/details/", details)

    assert changes_of(api, account) == [
        ("Changed plan, MRR and renewal date", "Plan: pro → enterprise · MRR: 500.00 → 2,400.00 · "
         "Renewal date: none → Mar 1, 2027", "Bob CSM"),
    ]


def test_saving_the_details_unchanged_records_nothing(client, bob, account, api):
    client.force_login(bob)
    details = {"name": "Acme", "domain": account.domain, "plan": "pro", "mrr": "500.00", "currency": "USD",
               "signup_date": account.signup_date.isoformat()}

    client.post(f"/t/alpha/accounts/{account.pk}/details/", details)

    assert changes_of(api, account) == []


def test_handing_accounts_over_records_each_accounts_previous_owner(client, alice, bob, tenant, account, api):
    unowned = AccountFactory(tenant=tenant, name="Bolt", owner=None)
    already_alices = AccountFactory(tenant=tenant, name="Core", owner=alice)
    client.force_login(alice)

    client.post("/t/alpha/accounts/assign/", {"account": [account.pk, unowned.pk, already_alices.pk],
                                              "owner": alice.pk})
    client.post("/t/alpha/accounts/assign/", {"account": [unowned.pk], "owner": "none"})

    assert changes_of(api, account) == [("Changed owner", "Owner: Bob CSM → Alice Admin", "Alice Admin")]
    assert changes_of(api, unowned) == [
        ("Changed owner", "Owner: Alice Admin → none", "Alice Admin"),
        ("Changed owner", "Owner: none → Alice Admin", "Alice Admin"),
    ]
    assert changes_of(api, already_alices) == []


def test_an_owner_who_has_since_left_is_named_as_a_former_member(tenant, alice, account, api):
    leaver = UserFactory(name="Lee Leaver")
    AccountChange.objects.create(tenant=tenant, account=account, actor=alice, actor_label="Alice Admin",
                                 fields={"owner": [leaver.pk, alice.pk]})
    leaver.delete()

    assert changes_of(api, account) == [("Changed owner", "Owner: a former member → Alice Admin", "Alice Admin")]


def test_an_api_change_names_the_key_it_came_through(crm, crm_key, tenant, account):
    tenant.timezone = "America/New_York"
    tenant.save()

    response = crm.patch(f"/api/v1/accounts/{account.pk}/", {"plan": "team", "trial_ends_at": "2027-01-15T14:00:00Z"},
                         format="json")

    assert response.status_code == 200, response.content
    # The trial's end in the tenant's time zone, New York.
    assert changes_of(crm, account) == [
        ("Changed plan and trial end", "Plan: pro → team · Trial end: none → Jan 15, 2027 09:00", key_label(crm_key)),
    ]


def test_an_integration_sending_the_same_values_again_records_nothing_more(crm, crm_key, tenant, account):
    batch = {"items": [
        {"external_id": "acme", "mrr": "750", "attributes": {"region": "EMEA"}},
        {"external_id": "newco", "name": "Newco", "mrr": "100"},
    ]}

    for _ in range(2):
        assert crm.post("/api/v1/accounts/bulk/", batch, format="json").status_code == 200
    crm.post("/api/v1/accounts/bulk/", {"items": [{"external_id": "acme", "attributes": {"tier": "gold"}}]},
             format="json")

    assert changes_of(crm, account) == [("Changed MRR", "MRR: 500.00 → 750.00", key_label(crm_key))]
    # A new account's values are its first, not changes.
    assert AccountChange.objects.for_tenant(tenant).count() == 1


def test_one_account_upserted_by_its_external_id_records_its_change(crm, crm_key, account):
    response = crm.put("/api/v1/accounts/by-external-id/acme/", {"name": "Acme Inc."}, format="json")

    assert response.status_code == 200, response.content
    assert changes_of(crm, account) == [("Changed name", "Name: Acme → Acme Inc.", key_label(crm_key))]


def test_a_segment_group_call_records_the_companys_new_plan(crm, crm_key, account):
    segment = APIClient()
    segment.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{crm_key}:".encode()).decode())

    response = segment.post("/api/segment/v1/group", {"userId": "u-1", "groupId": "acme", "traits": {"plan": "team"}},
                            format="json")

    assert response.status_code == 200, response.content
    assert changes_of(crm, account) == [("Changed plan", "Plan: pro → team", key_label(crm_key))]


def test_a_csv_import_records_the_changes_as_the_admins(client, alice, account, api):
    client.force_login(alice)
    csv_file = SimpleUploadedFile("accounts.csv", b"external_id,card_expires_at\nacme,2027-06-30\n")

    response = client.post("/t/alpha/settings/import/", {"kind": "accounts", "file": csv_file}, follow=True)

    assert "1 updated" in response.content.decode()
    assert changes_of(api, account) == [("Changed card expiry", "Card expiry: none → Jun 30, 2027", "Alice Admin")]


def test_another_tenants_changes_stay_in_their_story(other_api, other_tenant, charlie, api, account):
    theirs = AccountFactory(tenant=other_tenant, owner=None)
    AccountChange.objects.create(tenant=other_tenant, account=theirs, actor=charlie, actor_label="Charlie",
                                 fields={"plan": ["pro", "team"]}, at=dt.datetime(2026, 11, 2, tzinfo=dt.UTC))

    assert api.get(f"/api/v1/accounts/{theirs.pk}/activity/?kind=change").status_code == 404
    assert changes_of(other_api, theirs) == [("Changed plan", "Plan: pro → team", "Charlie")]
    assert changes_of(api, account) == []


def test_an_import_from_the_command_line_names_no_one(tmp_path, account, api):
    csv_path = tmp_path / "accounts.csv"
    csv_path.write_text("external_id,plan\nacme,team\n")

    call_command("import_csv", "alpha", "accounts", str(csv_path), stdout=io.StringIO())

    assert changes_of(api, account) == [("Changed plan", "Plan: pro → team", "")]
    (change,) = api.get("/api/v1/account-changes/").json()["results"]
    assert (change["by"], change["by_email"]) == ("", None)


# The feed of changes, for integrations that keep another system in step.

FEED = "/api/v1/account-changes/"


def test_the_feed_lists_changes_newest_first_with_their_values_as_the_accounts_api_writes_them(
    client, crm, crm_key, alice, bob, tenant, account
):
    crm.patch(f"/api/v1/accounts/{account.pk}/", {"mrr": "640.50", "renewal_date": "2027-03-01"}, format="json")
    client.force_login(alice)
    client.post("/t/alpha/accounts/assign/", {"account": [account.pk], "owner": alice.pk})

    body = crm.get(FEED).json()

    owner, details = body["results"]
    assert owner["account"] == "acme" and owner["account_id"] == account.pk
    assert (owner["by"], owner["by_email"]) == ("Alice Admin", "alice@alpha.example")
    assert owner["changes"] == {"owner": {"from": "bob@alpha.example", "to": "alice@alpha.example"}}
    assert details["by"] == key_label(crm_key)
    assert details["changes"] == {
        "mrr": {"from": "500.00", "to": "640.50"}, "renewal_date": {"from": None, "to": "2027-03-01"}
    }
    assert body["next"] is None


def test_the_feed_reads_one_accounts_changes_of_one_field_since_a_moment(crm, tenant, account):
    other = AccountFactory(tenant=tenant, external_id="bolt", plan="pro")
    with time_machine.travel(dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC), tick=False):
        crm.patch(f"/api/v1/accounts/{account.pk}/", {"plan": "team"}, format="json")
    with time_machine.travel(dt.datetime(2026, 11, 9, 9, tzinfo=dt.UTC), tick=False):
        crm.patch(f"/api/v1/accounts/{account.pk}/", {"plan": "enterprise"}, format="json")
        crm.patch(f"/api/v1/accounts/{account.pk}/", {"name": "Acme Inc."}, format="json")
        crm.patch(f"/api/v1/accounts/{other.pk}/", {"plan": "team"}, format="json")

    listed = crm.get(FEED, {"account": "acme", "field": "plan", "since": "2026-11-05T00:00:00Z"}).json()["results"]

    assert [change["changes"] for change in listed] == [{"plan": {"from": "team", "to": "enterprise"}}]


def test_the_feed_pages_on_by_its_next_links_without_repeating_a_change(crm, account):
    for mrr in range(501, 506):
        crm.patch(f"/api/v1/accounts/{account.pk}/", {"mrr": str(mrr)}, format="json")

    seen, url = [], f"{FEED}?page_size=2"
    while url:
        body = crm.get(url).json()
        seen += [change["changes"]["mrr"]["to"] for change in body["results"]]
        url = body["next"]

    assert seen == ["505.00", "504.00", "503.00", "502.00", "501.00"]


@pytest.mark.parametrize("query, field", [("since=yesterday", "since"), ("field=attributes", "field")])
def test_a_bad_filter_is_a_400_naming_it(crm, query, field):
    response = crm.get(f"{FEED}?{query}")

    assert response.status_code == 400
    assert [error["field"] for error in response.json()["error"]["fields"]] == [field]


def test_the_feed_holds_only_the_keys_tenant_and_needs_the_read_scope(crm, other_api, other_tenant, tenant, account):
    crm.patch(f"/api/v1/accounts/{account.pk}/", {"plan": "team"}, format="json")

    assert other_api.get(FEED).json()["results"] == []
    assert make_api_client(tenant, scopes=["ingest"]).get(FEED).status_code == 403


def test_an_amount_typed_without_cents_is_kept_with_them(client, bob, crm, account):
    client.force_login(bob)
    details = {"name": "Acme", "domain": account.domain, "plan": "pro", "mrr": "2400", "currency": "USD",
               "signup_date": account.signup_date.isoformat()}

    client.post(f"/t/alpha/accounts/{account.pk}/details/", details)

    assert crm.get(FEED).json()["results"][0]["changes"] == {"mrr": {"from": "500.00", "to": "2400.00"}}
