"""Who changed a contact's name, email, title, role or email consent, from what to what: kept in the story of
the account the contact is with, from the pages, the API, the Segment API and imports alike."""

import base64
import datetime as dt
import io

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from rest_framework.test import APIClient

from csplatform.customers.models import ContactChange
from csplatform.tenancy.services import api_key_create

from ..conftest import make_api_client
from ..factories import AccountFactory, ContactFactory
from .conftest import key_label, story_of

pytestmark = pytest.mark.django_db
FEED = "/api/v1/contact-changes/"


@pytest.fixture
def account(tenant):
    return AccountFactory(tenant=tenant, external_id="acme", name="Acme")


@pytest.fixture
def uma(account):
    return ContactFactory(account=account, external_id="u-1", name="Uma Chen", email="uma@acme.example",
                          title="Analyst", role="user")


def contact_changes_of(client, account):
    return story_of(client, account, "contact")


def test_a_role_changed_on_the_account_page_is_kept_with_who_changed_it(client, bob, account, uma, api):
    client.force_login(bob)

    client.post(f"/t/alpha/accounts/{account.pk}/contacts/{uma.pk}/", {"title": "Head of Data", "role": "champion"})

    assert contact_changes_of(api, account) == [
        ("Changed Uma Chen's title and role", "Title: Analyst → Head of Data · Role: User → Champion", "Bob CSM")
    ]


def test_the_api_keeps_a_change_and_nothing_for_the_same_values_sent_again(crm, crm_key, account, uma, api):
    crm.patch(f"/api/v1/contacts/{uma.pk}/", {"email": "uma.chen@acme.example"}, format="json")
    crm.put("/api/v1/contacts/by-external-id/u-1/", {"email": "uma.chen@acme.example"}, format="json")
    crm.post("/api/v1/contacts/bulk/", {"items": [{"external_id": "u-1", "unsubscribed": True}]}, format="json")

    assert contact_changes_of(api, account) == [
        ("Changed Uma Chen's unsubscribed from emails", "Unsubscribed from emails: no → yes", key_label(crm_key)),
        ("Changed Uma Chen's email", "Email: uma@acme.example → uma.chen@acme.example", key_label(crm_key)),
    ]


def test_a_contact_added_by_an_integration_is_kept_with_what_it_was_given(crm, crm_key, account, api):
    response = crm.put("/api/v1/contacts/by-external-id/u-9/", {"account": "acme", "name": "Ned"}, format="json")
    crm.put("/api/v1/contacts/by-external-id/u-9/", {"account": "acme", "name": "Ned"}, format="json")

    assert response.status_code == 201, response.content
    assert contact_changes_of(api, account) == [("Added the contact Ned", "Name: Ned · Role: User", key_label(crm_key))]


def test_contacts_added_on_the_page_through_the_api_and_in_bulk_each_keep_their_addition(
    client, bob, crm, crm_key, account, api
):
    client.force_login(bob)

    client.post(f"/t/alpha/accounts/{account.pk}/contacts/add/",
                {"contact-name": "Pia Park", "contact-email": "pia@acme.example", "contact-role": "champion"})
    crm.post("/api/v1/contacts/", {"external_id": "u-2", "account": "acme", "email": "raj@acme.example"},
             format="json")
    crm.post("/api/v1/contacts/bulk/", {"items": [{"external_id": "u-3", "account": "acme", "title": "CFO"}]},
             format="json")

    assert contact_changes_of(api, account) == [
        ("Added the contact u-3", "Title: CFO · Role: User", key_label(crm_key)),
        ("Added the contact raj@acme.example", "Email: raj@acme.example · Role: User", key_label(crm_key)),
        ("Added the contact Pia Park", "Name: Pia Park · Email: pia@acme.example · Role: Champion", "Bob CSM"),
    ]


def test_a_segment_identify_keeps_the_traits_that_changed(tenant, alice, account, uma, api):
    _, raw_key = api_key_create(tenant=tenant, name="Segment", scopes=["ingest"], created_by=alice)
    segment = APIClient()
    segment.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{raw_key}:".encode()).decode())

    response = segment.post("/api/segment/v1/identify", {"userId": "u-1", "traits": {"title": "VP Data"}},
                            format="json")

    assert response.status_code == 200, response.content
    ((text, detail, by),) = contact_changes_of(api, account)
    assert (text, detail) == ("Changed Uma Chen's title", "Title: Analyst → VP Data")
    assert by == f"Alice Admin via key Segment ({raw_key[:12]}…)"


def test_a_csv_import_records_the_changes_as_the_admins(client, alice, account, uma, api):
    client.force_login(alice)
    csv_file = SimpleUploadedFile("contacts.csv", b"external_id,role\nu-1,billing\n")

    response = client.post("/t/alpha/settings/import/", {"kind": "contacts", "file": csv_file}, follow=True)

    assert "1 updated" in response.content.decode()
    assert contact_changes_of(api, account) == [("Changed Uma Chen's role", "Role: User → Billing", "Alice Admin")]


def test_an_import_from_the_command_line_names_no_one(tmp_path, account, uma, api):
    csv_path = tmp_path / "contacts.csv"
    csv_path.write_text("external_id,name\nu-1,Uma Chen-Li\n")

    call_command("import_csv", "alpha", "contacts", str(csv_path), stdout=io.StringIO())

    assert contact_changes_of(api, account) == [("Changed Uma Chen-Li's name", "Name: Uma Chen → Uma Chen-Li", "")]


def test_the_feed_names_contact_and_account_and_reads_one_contacts_field_since_a_moment(crm, crm_key, account, uma):
    other = ContactFactory(account=account, external_id="u-2", title="Analyst")
    with time_machine.travel(dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC), tick=False):
        crm.patch(f"/api/v1/contacts/{uma.pk}/", {"role": "administrator"}, format="json")
    with time_machine.travel(dt.datetime(2026, 11, 9, 9, tzinfo=dt.UTC), tick=False):
        crm.patch(f"/api/v1/contacts/{uma.pk}/", {"role": "champion"}, format="json")
        crm.patch(f"/api/v1/contacts/{uma.pk}/", {"title": "Lead"}, format="json")
        crm.patch(f"/api/v1/contacts/{other.pk}/", {"role": "champion"}, format="json")

    listed = crm.get(FEED, {"contact": "u-1", "field": "role", "since": "2026-11-05T00:00:00Z"}).json()["results"]

    assert len(listed) == 1
    change = listed[0]
    assert (change["contact"], change["contact_id"], change["account"], change["account_id"]) == (
        "u-1", uma.pk, "acme", account.pk
    )
    assert (change["by"], change["by_email"]) == (key_label(crm_key), "alice@alpha.example")
    assert change["changes"] == {"role": {"from": "administrator", "to": "champion"}}
    assert len(crm.get(FEED, {"account": "acme"}).json()["results"]) == 4


def test_a_contact_deleted_through_the_api_stays_in_the_story_with_what_it_had(crm, crm_key, account, uma, api):
    crm.patch(f"/api/v1/contacts/{uma.pk}/", {"title": "Lead"}, format="json")

    assert crm.delete(f"/api/v1/contacts/{uma.pk}/").status_code == 204

    assert contact_changes_of(api, account) == [
        ("Removed the contact Uma Chen", "Name: Uma Chen · Email: uma@acme.example · Title: Lead · Role: User",
         key_label(crm_key)),
        ("Changed Uma Chen's title", "Title: Analyst → Lead", key_label(crm_key)),
    ]


def test_a_nameless_contact_is_named_in_the_story_by_its_email_however_long(crm, account, api):
    email = f"{'a' * 60}@{'b' * 60}.{'c' * 60}.{'d' * 60}.example"
    nameless = ContactFactory(account=account, external_id="u-9", name="", email=email)

    crm.patch(f"/api/v1/contacts/{nameless.pk}/", {"title": "Lead"}, format="json")
    crm.delete(f"/api/v1/contacts/{nameless.pk}/")

    assert [text for text, _, _ in contact_changes_of(api, account)] == [
        f"Removed the contact {email}", f"Changed {email}'s title"
    ]


def test_the_feed_lists_a_removal_with_what_the_contact_had_and_keeps_its_earlier_changes(crm, account, uma):
    crm.patch(f"/api/v1/contacts/{uma.pk}/", {"role": "champion"}, format="json")
    crm.delete(f"/api/v1/contacts/{uma.pk}/")

    (removal,) = crm.get(FEED, {"removed": "true"}).json()["results"]
    (change,) = crm.get(FEED, {"removed": "false", "added": "false"}).json()["results"]

    assert (removal["contact"], removal["contact_id"], removal["contact_name"], removal["account"]) == (
        None, None, "Uma Chen", "acme"
    )
    assert removal["changes"] == {
        "name": {"from": "Uma Chen", "to": None}, "email": {"from": "uma@acme.example", "to": None},
        "title": {"from": "Analyst", "to": None}, "role": {"from": "champion", "to": None},
        "unsubscribed": {"from": False, "to": None},
    }
    assert (change["contact"], change["contact_name"], change["removed"]) == (None, "Uma Chen", False)
    assert change["changes"] == {"role": {"from": "user", "to": "champion"}}


@pytest.mark.parametrize(
    "query, field",
    [("since=yesterday", "since"), ("field=attributes", "field"), ("removed=maybe", "removed"), ("added=1x", "added")],
)
def test_a_bad_filter_is_a_400_naming_it(crm, query, field):
    response = crm.get(f"{FEED}?{query}")

    assert response.status_code == 400
    assert [error["field"] for error in response.json()["error"]["fields"]] == [field]


def test_the_feed_and_the_story_hold_only_the_tenants_own_changes(
    crm, other_api, other_tenant, charlie, tenant, account, uma, api
):
    theirs = ContactFactory(account=AccountFactory(tenant=other_tenant), name="Tess")
    ContactChange.objects.create(tenant=other_tenant, contact=theirs, account=theirs.account, actor=charlie,
                                 actor_label="Charlie", fields={"title": ["", "CTO"]})
    crm.patch(f"/api/v1/contacts/{uma.pk}/", {"title": "Lead"}, format="json")

    assert [change["contact"] for change in crm.get(FEED).json()["results"]] == ["u-1"]
    assert [change["changes"] for change in other_api.get(FEED).json()["results"]] == [
        {"title": {"from": "", "to": "CTO"}}
    ]
    assert api.get(f"/api/v1/accounts/{theirs.account.pk}/activity/?kind=contact").status_code == 404
    assert make_api_client(tenant, scopes=["ingest"]).get(FEED).status_code == 403
