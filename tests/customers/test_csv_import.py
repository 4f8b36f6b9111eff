from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from csplatform.customers.imports import MAX_IMPORT_BYTES
from csplatform.customers.models import Account, Contact

from ..conftest import make_api_client
from ..factories import AccountFactory

pytestmark = pytest.mark.django_db

ACCOUNTS_URL = "/api/v1/accounts/import/"
CONTACTS_URL = "/api/v1/contacts/import/"

GOOD_ACCOUNTS = (
    "external_id,name,owner,plan,mrr,currency,renewal_date,attributes.region,attributes.seats\r\n"
    "a1,Acme,alice@alpha.example,pro,120.50,usd,2030-01-31,eu,25\r\n"
    'a2,"Globex, Inc.",,team,0,EUR,,,\r\n'
)


def upload(client, url, content, name="data.csv"):
    if isinstance(content, str):
        content = content.encode()
    return client.post(url, {"file": SimpleUploadedFile(name, content, content_type="text/csv")}, format="multipart")


def account_ids(tenant):
    return set(Account.objects.for_tenant(tenant).values_list("external_id", flat=True))


def test_good_accounts_file_imports_every_row(api, tenant, alice):
    response = upload(api, ACCOUNTS_URL, GOOD_ACCOUNTS)
    assert response.status_code == 200, response.json()
    assert response.json() == {"rows": 2, "created": 2, "updated": 0}
    acme = Account.objects.for_tenant(tenant).get(external_id="a1")
    assert (acme.owner, acme.mrr, acme.currency) == (alice, Decimal("120.50"), "USD")
    assert acme.attributes == {"region": "eu", "seats": "25"}
    assert acme in Account.objects.for_tenant(tenant).dirty()
    globex = Account.objects.for_tenant(tenant).get(external_id="a2")
    assert (globex.name, globex.owner, globex.renewal_date, globex.attributes) == ("Globex, Inc.", None, None, {})


def test_reimport_updates_and_empty_cells_keep_stored_values(api, tenant, alice):
    upload(api, ACCOUNTS_URL, GOOD_ACCOUNTS)
    response = upload(api, ACCOUNTS_URL, "external_id,plan,owner\na1,enterprise,\n")
    assert response.json() == {"rows": 1, "created": 0, "updated": 1}
    acme = Account.objects.for_tenant(tenant).get(external_id="a1")
    assert (acme.plan, acme.owner, acme.name) == ("enterprise", alice, "Acme")


def test_byte_order_mark_is_accepted(api, tenant):
    response = upload(api, ACCOUNTS_URL, "\ufeffexternal_id,name\na1,Acme\n".encode())
    assert response.status_code == 200, response.json()
    assert account_ids(tenant) == {"a1"}


def test_file_with_a_bad_row_imports_nothing_and_reports_every_problem(api, tenant, charlie):
    content = (
        "external_id,name,owner,mrr,renewal_date\n"
        "good-1,Fine,,10,\n"
        "bad-1,Negative,,-5,2030-02-30\n"
        f"bad-2,Outsider,{charlie.email},1,\n"
        "good-1,Again,,1,\n"
        "short,row\n"
        "good-2,Fine too,,3,\n"
    )
    response = upload(api, ACCOUNTS_URL, content)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_csv"
    assert "nothing was imported" in error["message"]
    assert [(f["row"], f["column"]) for f in error["fields"]] == [
        (3, "mrr"),
        (3, "renewal_date"),
        (4, "owner"),
        (5, "external_id"),
        (6, None),
    ]
    assert error["fields"][0]["field"] == "rows[3].mrr"
    assert account_ids(tenant) == set()


def test_unknown_column_is_refused_before_any_row_is_read(api, tenant):
    response = upload(api, ACCOUNTS_URL, "external_id,name,colour,attributes\na1,Acme,red,x\n")
    assert response.status_code == 400
    assert [(f["row"], f["column"]) for f in response.json()["error"]["fields"]] == [
        (1, "colour"),
        (1, "attributes"),
    ]
    assert account_ids(tenant) == set()


def test_header_without_external_id_is_refused(api, tenant):
    response = upload(api, ACCOUNTS_URL, "name,plan\nAcme,pro\n")
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["column"] == "external_id"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "empty_file"),
        (b"\xef\xbb\xbf\r\n", "empty_file"),
        ("external_id,name\na1,Caf\u00e9 M\u00fcller\n".encode("latin-1"), "bad_encoding"),
    ],
)
def test_empty_or_non_utf8_file_is_a_clear_400(api, tenant, content, code):
    response = upload(api, ACCOUNTS_URL, content)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert account_ids(tenant) == set()


def test_upload_without_a_file_names_the_field(api, tenant):
    response = api.post(ACCOUNTS_URL, {"other": "x"}, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["field"] == "file"


def test_file_over_the_size_limit_is_a_413(api, tenant):
    row = "a1,Acme\n"
    content = "external_id,name\n" + row * (MAX_IMPORT_BYTES // len(row) + 1)
    response = upload(api, ACCOUNTS_URL, content)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert account_ids(tenant) == set()


def test_read_only_key_cannot_import(tenant):
    reader = make_api_client(tenant, scopes=["read"])
    assert upload(reader, ACCOUNTS_URL, GOOD_ACCOUNTS).status_code == 403
    assert account_ids(tenant) == set()


def test_contacts_file_links_contacts_to_the_tenants_accounts(api, tenant, other_tenant):
    acme = AccountFactory(tenant=tenant, external_id="acme")
    AccountFactory(tenant=other_tenant, external_id="theirs")
    good = "external_id,account,email,role,unsubscribed\nc1,acme,ann@acme.example,champion,yes\n"
    response = upload(api, CONTACTS_URL, good)
    assert response.json() == {"rows": 1, "created": 1, "updated": 0}
    contact = Contact.objects.for_tenant(tenant).get(external_id="c1")
    assert (contact.account, contact.role, contact.unsubscribed) == (acme, "champion", True)

    bad = "external_id,account\nc2,acme\nc3,theirs\nc4,\n"
    response = upload(api, CONTACTS_URL, bad)
    assert response.status_code == 400
    assert [(f["row"], f["column"]) for f in response.json()["error"]["fields"]] == [(3, "account"), (4, "account")]
    assert set(Contact.objects.for_tenant(tenant).values_list("external_id", flat=True)) == {"c1"}


def test_command_imports_a_good_file_and_prints_the_counts(tenant, tmp_path, capsys):
    path = tmp_path / "accounts.csv"
    path.write_text("external_id,name\na1,Acme\na2,Globex\n")
    call_command("import_csv", "alpha", "accounts", str(path))
    assert "Imported 2 accounts: 2 created, 0 updated." in capsys.readouterr().out
    assert account_ids(tenant) == {"a1", "a2"}


def test_command_prints_the_report_and_exits_non_zero_on_a_bad_file(tenant, tmp_path, capsys):
    path = tmp_path / "accounts.csv"
    path.write_text("external_id,name,mrr\na1,Acme,10\na2,Globex,lots\n")
    # manage.py exits with the CommandError's return code.
    with pytest.raises(CommandError, match="nothing was imported") as failure:
        call_command("import_csv", "alpha", "accounts", str(path))
    assert failure.value.returncode == 1
    assert "row 3, column mrr: A valid number is required." in capsys.readouterr().err
    assert account_ids(tenant) == set()


def test_command_exits_non_zero_for_an_unknown_tenant(db, tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text("external_id,name\na1,Acme\n")
    with pytest.raises(CommandError, match="No tenant with the slug 'nope'") as failure:
        call_command("import_csv", "nope", "accounts", str(path))
    assert failure.value.returncode == 1
