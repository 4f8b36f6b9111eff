import csv
import datetime as dt
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from csplatform.tenancy.timezones import tenant_today
from health import exports

from ..factories import AccountFactory, MembershipFactory, UsageEventFactory, UserFactory
from .conftest import make_accounts, place, score

pytestmark = pytest.mark.django_db
EXPORT = "/t/alpha/accounts.csv"


def download(client, url=EXPORT):
    response = client.get(url)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    body = b"".join(response.streaming_content)
    assert body.startswith("\ufeff".encode()), "Excel reads UTF-8 only after a byte order mark"
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


def test_a_row_holds_what_the_portfolio_shows_with_times_in_the_tenants_zone(signed_in, tenant, stages, bob):
    tenant.timezone = "Europe/Berlin"
    tenant.save()
    account = AccountFactory(
        tenant=tenant, name="Granite Labs", external_id="crm-77", domain="granite.example", plan="pro", mrr="12500.50",
        currency="EUR", owner=bob, renewal_date=dt.date(2027, 3, 1),
        trial_ends_at=dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.timezone.utc),
    )
    place(account, stages["adoption"], days_ago=4)
    score(account, 35.4, delta_30d=-45.25)
    UsageEventFactory(account=account, timestamp=dt.datetime(2026, 12, 1, 9, 5, tzinfo=dt.timezone.utc))

    [row] = download(signed_in)

    assert row == {
        "Account": "Granite Labs",
        "External ID": "crm-77",
        "Domain": "granite.example",
        "Plan": "pro",
        "Stage": "Adoption",
        "Days in stage": "4",
        "Health": "Red",
        "Health score": "35",
        "Health change, 30 days": "-45.2",
        "MRR": "12500.50",
        "Currency": "EUR",
        "Renewal date": "2027-03-01",
        "Trial ends": "2027-01-01",
        "Owner": "Bob CSM",
        "Owner email": "bob@alpha.example",
        "Last activity (Europe/Berlin)": "2026-12-01 10:05",
        "Link": f"http://testserver/t/alpha/accounts/{account.pk}/",
    }


def test_a_new_account_has_no_stage_is_not_scored_and_leaves_its_unknowns_empty(signed_in, tenant, stages):
    AccountFactory(tenant=tenant, name="Fresh Start", owner=None)

    [row] = download(signed_in)

    assert row["Stage"] == row["Days in stage"] == row["Health score"] == row["Owner"] == ""
    assert row["Health"] == "Not scored"
    assert row["Last activity (UTC)"] == row["Renewal date"] == ""


def test_an_owner_without_a_name_is_named_by_email_as_on_the_page(signed_in, tenant, stages):
    nameless = UserFactory(email="nameless@alpha.example", name="")
    MembershipFactory(tenant=tenant, user=nameless)
    AccountFactory(tenant=tenant, owner=nameless)

    [row] = download(signed_in)

    assert row["Owner"] == row["Owner email"] == "nameless@alpha.example"


def test_the_file_has_every_page_of_the_filtered_list_in_the_pages_sort(signed_in, tenant, stages):
    make_accounts(tenant, stages, 40)
    listed = [row["Account"] for row in download(signed_in, f"{EXPORT}?stage=onboarding&sort=-health")]

    # make_accounts puts every third account in onboarding and scores account n at (n * 17) % 100.
    onboarding = sorted(range(0, 40, 3), key=lambda number: -(number * 17 % 100))
    assert len(listed) == 14 > 10
    assert listed == [f"Account {number:03d}" for number in onboarding]


def test_the_file_reads_its_rows_a_chunk_at_a_time_in_one_query_each(signed_in, tenant, stages, monkeypatch):
    monkeypatch.setattr(exports, "CSV_CHUNK", 10)
    make_accounts(tenant, stages, 25)
    response = signed_in.get(f"{EXPORT}?sort=name")

    with CaptureQueriesContext(connection) as queries:
        body = b"".join(response.streaming_content).decode("utf-8-sig")

    assert len(queries.captured_queries) == 3
    names = [row["Account"] for row in csv.DictReader(io.StringIO(body))]
    assert names == [f"Account {number:03d}" for number in range(25)]


def test_my_accounts_exports_only_mine(client, bob, tenant, stages):
    AccountFactory(tenant=tenant, name="Bob's", owner=bob)
    AccountFactory(tenant=tenant, name="Someone else's", owner=None)
    client.force_login(bob)

    assert [row["Account"] for row in download(client, f"{EXPORT}?scope=mine")] == ["Bob's"]


def test_a_cell_a_spreadsheet_would_run_as_a_formula_starts_with_a_quote(signed_in, tenant, stages):
    AccountFactory(tenant=tenant, name='=HYPERLINK("http://evil.example","Click")', domain="@evil.example", plan="-1")

    [row] = download(signed_in)

    assert row["Account"] == "'=HYPERLINK(\"http://evil.example\",\"Click\")"
    assert row["Domain"] == "'@evil.example"
    assert row["Plan"] == "'-1"


def test_a_viewer_downloads_the_file_too(client, viv, tenant, stages):
    AccountFactory(tenant=tenant, name="Seen By Viv")
    client.force_login(viv)

    assert [row["Account"] for row in download(client)] == ["Seen By Viv"]


def test_the_file_is_named_after_the_tenant_and_its_day(signed_in, tenant, stages):
    response = signed_in.get(EXPORT)

    assert response["Content-Disposition"] == f'attachment; filename="alpha-accounts-{tenant_today(tenant)}.csv"'


def test_filters_that_match_nothing_give_the_header_alone(signed_in, tenant, stages):
    AccountFactory(tenant=tenant, name="Not Matched")

    response = signed_in.get(f"{EXPORT}?q=nothing-like-this")
    body = b"".join(response.streaming_content).decode("utf-8-sig")

    assert list(csv.reader(io.StringIO(body))) == [exports.portfolio_csv_header(tenant.timezone)]


def test_an_invalid_filter_answers_400_naming_the_field_and_exports_nothing(signed_in, tenant, stages):
    AccountFactory(tenant=tenant, name="Would Leak If Ignored")

    response = signed_in.get(f"{EXPORT}?stage=no-such-stage")

    assert response.status_code == 400
    text = response.content.decode()
    assert "stage: Select a valid choice. no-such-stage is not one of the available choices." in text
    assert "Would Leak If Ignored" not in text


def test_another_tenants_accounts_never_reach_the_file(signed_in, tenant, other_tenant, stages):
    AccountFactory(tenant=tenant, name="Ours")
    AccountFactory(tenant=other_tenant, name="Theirs")

    assert [row["Account"] for row in download(signed_in)] == ["Ours"]
    assert signed_in.get("/t/beta/accounts.csv").status_code == 404


def test_the_portfolio_links_the_file_with_its_filters_and_not_its_page(signed_in, tenant, stages):
    make_accounts(tenant, stages, 30)

    html = signed_in.get("/t/alpha/?stage=adoption&sort=name&page=2").content.decode()

    assert 'href="/t/alpha/accounts.csv?stage=adoption&amp;sort=name" download>Download CSV' in html


def test_the_portfolio_offers_no_file_while_a_filter_is_invalid(signed_in, tenant, stages):
    AccountFactory(tenant=tenant)

    assert "Download CSV" in signed_in.get("/t/alpha/").content.decode()
    assert "Download CSV" not in signed_in.get("/t/alpha/?renewal=soon").content.decode()
