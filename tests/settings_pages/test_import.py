import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from csplatform.customers.models import Account, Contact

from ..factories import AccountFactory
from .conftest import page

pytestmark = pytest.mark.django_db
URL = "/t/alpha/settings/import/"


def upload(client, text, kind="accounts", encoding="utf-8"):
    csv_file = SimpleUploadedFile(f"{kind}.csv", text.encode(encoding), content_type="text/csv")
    return client.post(URL, {"kind": kind, "file": csv_file}, follow=True)


def accounts_of(tenant):
    return dict(Account.objects.for_tenant(tenant).values_list("external_id", "name"))


def test_an_admin_imports_accounts_from_a_csv_file_and_updates_them_by_external_id(admin_client, tenant, bob):
    AccountFactory(tenant=tenant, external_id="acme", name="Acme (old name)")
    response = upload(
        admin_client,
        "external_id,name,owner,mrr,renewal_date,attributes.region\n"
        "acme,Acme Corp,bob@alpha.example,1250.00,2027-03-31,EMEA\n"
        "zenith,Zenith Freight,,99,,\n",
    )

    assert "Imported 2 accounts: 1 created, 1 updated." in page(response)
    assert accounts_of(tenant) == {"acme": "Acme Corp", "zenith": "Zenith Freight"}
    acme = Account.objects.for_tenant(tenant).get(external_id="acme")
    assert acme.owner == bob and str(acme.renewal_date) == "2027-03-31" and acme.attributes["region"] == "EMEA"


def test_contacts_are_imported_onto_their_accounts(admin_client, tenant):
    account = AccountFactory(tenant=tenant, external_id="acme")
    response = upload(admin_client, "external_id,account,email,role\nc-1,acme,dana@acme.example,champion\n", "contacts")

    assert "Imported 1 contacts: 1 created, 0 updated." in page(response)
    contact = Contact.objects.for_tenant(tenant).get(external_id="c-1")
    assert (contact.account, contact.role) == (account, "champion")


def test_a_file_with_problems_is_refused_whole_with_each_problem_by_row_and_column(admin_client, tenant):
    response = upload(
        admin_client,
        "external_id,name,owner,mrr\n"
        "good,Good Co,,10\n"
        "bad,Bad Co,nobody@elsewhere.example,lots\n",
    )

    assert response.status_code == 400
    html = page(response)
    assert "1 row(s) have errors; nothing was imported." in html
    assert "<code>owner</code>" in html and "nobody@elsewhere.example is not a member of this team." in html
    assert "<code>mrr</code>" in html and "A valid number is required." in html
    assert accounts_of(tenant) == {}


def test_an_unknown_column_is_refused_before_any_row(admin_client, tenant):
    html = page(upload(admin_client, "external_id,nmae\nacme,Acme\n"))

    assert "The header row is invalid; nothing was imported." in html and "<code>nmae</code>" in html
    assert accounts_of(tenant) == {}


def test_a_file_that_is_not_utf8_is_refused_with_how_to_save_it(admin_client, tenant):
    html = page(upload(admin_client, "external_id,name\nacme,Café\n", encoding="latin-1"))

    assert "Save it as &#x27;CSV UTF-8&#x27;" in html
    assert accounts_of(tenant) == {}


def test_importing_without_a_file_is_a_form_error(admin_client):
    response = admin_client.post(URL, {"kind": "accounts"})

    assert response.status_code == 400
    assert "Choose the CSV file to import." in page(response)


def test_a_file_over_the_limit_is_refused_on_its_field(admin_client, tenant, monkeypatch):
    monkeypatch.setattr("csplatform.customers.forms.MAX_IMPORT_BYTES", 10)
    html = page(upload(admin_client, "external_id,name\nacme,Acme\n"))

    assert "The file is larger than" in html
    assert accounts_of(tenant) == {}


def test_an_import_touches_only_the_admins_own_tenant(admin_client, tenant, other_tenant):
    AccountFactory(tenant=other_tenant, external_id="acme", name="Beta's Acme")
    upload(admin_client, "external_id,name\nacme,Alpha's Acme\n")

    assert accounts_of(tenant) == {"acme": "Alpha's Acme"}
    assert accounts_of(other_tenant) == {"acme": "Beta's Acme"}


def test_the_page_offers_an_empty_file_of_each_kind_with_every_column(admin_client):
    response = admin_client.get(f"{URL}template/contacts/")

    assert response["Content-Disposition"] == 'attachment; filename="contacts-import.csv"'
    assert response.content.decode().splitlines() == [
        "external_id,account,email,name,title,role,last_seen_at,unsubscribed"
    ]
    assert admin_client.get(f"{URL}template/invoices/").status_code == 404


def test_only_admins_import(client, bob):
    client.force_login(bob)
    assert client.get(URL).status_code == 403
    assert upload(client, "external_id,name\nacme,Acme\n").status_code == 403


def test_an_empty_portfolio_points_an_admin_to_the_import(admin_client):
    assert 'href="/t/alpha/settings/import/"' in page(admin_client.get("/t/alpha/"))
