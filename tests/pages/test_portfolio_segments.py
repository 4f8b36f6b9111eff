"""Segments on the CSM's pages: the portfolio (and its CSV file) filtered by one, the account page naming its own."""

import csv
import io
import re
from html import unescape

import pytest

from alerts.models import Subject
from alerts.services import segment_create, segments_refresh
from csplatform.customers.models import Account

from ..factories import AccountFactory, ContactFactory
from .conftest import make_accounts, place, queries_per_request
from .test_portfolio import row_names

pytestmark = pytest.mark.django_db


def refresh(tenant):
    segments_refresh(tenant=tenant, account_ids=list(Account.objects.for_tenant(tenant).values_list("pk", flat=True)))


@pytest.fixture
def enterprise(tenant, alice):
    """An account segment, "Enterprise", holding the accounts on the enterprise plan."""
    return segment_create(
        tenant=tenant, actor=alice, key="enterprise", name="Enterprise", criteria_text='account.plan == "enterprise"'
    )


@pytest.fixture
def champions(tenant, alice):
    """A contact segment, "Champions", holding the contacts whose role is champion."""
    return segment_create(
        tenant=tenant, actor=alice, key="champions", name="Champions", criteria_text='contact.role == "champion"',
        subject=Subject.CONTACT,
    )


def exported_names(client, query):
    response = client.get(f"/t/alpha/accounts.csv{query}")
    assert response.status_code == 200, response.content
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    return [row["Account"] for row in csv.DictReader(io.StringIO(body))]


def test_the_segment_filter_lists_the_accounts_in_the_segment_now_and_not_those_that_left(
    signed_in, tenant, enterprise
):
    AccountFactory(tenant=tenant, name="Big Co", plan="enterprise")
    leaving = AccountFactory(tenant=tenant, name="Was Big", plan="enterprise")
    AccountFactory(tenant=tenant, name="Small Co", plan="starter")
    refresh(tenant)
    Account.objects.for_tenant(tenant).filter(pk=leaving.pk).update(plan="starter")
    refresh(tenant)

    html = signed_in.get("/t/alpha/?segment=enterprise").content.decode()

    assert row_names(html) == ["Big Co"]
    assert '<option value="enterprise" selected>Enterprise</option>' in html
    assert re.search(r"<caption>\s*1 account\s*</caption>", html)


def test_a_contact_segment_lists_each_account_with_a_contact_in_it_once(signed_in, tenant, champions):
    two_champions = AccountFactory(tenant=tenant, name="Two Champions")
    ContactFactory.create_batch(2, account=two_champions, role="champion")
    ContactFactory(account=AccountFactory(tenant=tenant, name="No Champion"), role="user")
    refresh(tenant)

    html = signed_in.get("/t/alpha/?segment=champions").content.decode()

    assert row_names(html) == ["Two Champions"]
    assert '<option value="champions" selected>Champions (contacts)</option>' in html


def test_the_segment_filter_combines_with_the_others_and_clears_with_them(signed_in, tenant, stages, enterprise):
    big_onboarding, big_renewal = (
        AccountFactory(tenant=tenant, name=name, plan="enterprise") for name in ("Big Onboarding", "Big Renewal")
    )
    place(big_onboarding, stages["onboarding"])
    place(big_renewal, stages["renewal"])
    refresh(tenant)

    html = signed_in.get("/t/alpha/?segment=enterprise&stage=renewal").content.decode()

    assert row_names(html) == ["Big Renewal"]
    clear = re.search(r'<a href="([^"]*)">Clear filters</a>', html).group(1)
    assert "segment" not in unescape(clear) and "stage" not in unescape(clear)


def test_the_csv_file_holds_the_segments_accounts_only(signed_in, tenant, enterprise):
    for number in range(3):
        AccountFactory(tenant=tenant, name=f"Big {number}", plan="enterprise")
    AccountFactory(tenant=tenant, name="Small", plan="starter")
    refresh(tenant)

    assert exported_names(signed_in, "?segment=enterprise&sort=-name") == ["Big 2", "Big 1", "Big 0"]


def test_an_unknown_segment_is_a_form_error_on_the_page_and_a_400_for_the_file(signed_in, tenant, enterprise):
    html = signed_in.get("/t/alpha/?segment=nonesuch").content.decode()
    assert "Select a valid choice. nonesuch is not one of the available choices." in html

    response = signed_in.get("/t/alpha/accounts.csv?segment=nonesuch")
    assert response.status_code == 400
    assert "segment: Select a valid choice." in response.content.decode()


def test_another_tenants_segment_is_no_choice_and_its_members_never_show(
    signed_in, tenant, other_tenant, charlie, enterprise
):
    segment_create(
        tenant=other_tenant, actor=charlie, key="theirs", name="Theirs", criteria_text='account.plan == "enterprise"'
    )
    AccountFactory(tenant=other_tenant, name="Their Big Co", plan="enterprise")
    AccountFactory(tenant=tenant, name="Our Big Co", plan="enterprise")
    refresh(tenant)
    refresh(other_tenant)

    page = signed_in.get("/t/alpha/").content.decode()
    assert 'value="theirs"' not in page and "Theirs" not in page
    assert "Select a valid choice." in signed_in.get("/t/alpha/?segment=theirs").content.decode()
    assert signed_in.get("/t/alpha/accounts.csv?segment=theirs").status_code == 400
    assert exported_names(signed_in, "?segment=enterprise") == ["Our Big Co"]


def test_filtering_by_a_segment_runs_the_same_number_of_queries_for_5_and_50_accounts(
    signed_in, tenant, stages, enterprise
):
    make_accounts(tenant, stages, 5, prefix="Few")
    Account.objects.for_tenant(tenant).update(plan="enterprise")
    refresh(tenant)
    few = queries_per_request(signed_in, "/t/alpha/?segment=enterprise", tenant)
    make_accounts(tenant, stages, 45, prefix="More")
    Account.objects.for_tenant(tenant).update(plan="enterprise")
    refresh(tenant)

    assert queries_per_request(signed_in, "/t/alpha/?segment=enterprise", tenant) == few


def test_the_account_page_names_its_segments_and_links_each_to_the_filtered_portfolio(
    signed_in, tenant, enterprise, champions
):
    account = AccountFactory(tenant=tenant, name="Big Co", plan="enterprise")
    ContactFactory.create_batch(2, account=account, role="champion")
    refresh(tenant)

    html = signed_in.get(f"/t/alpha/accounts/{account.pk}/").content.decode()
    start = html.index("<dt>Segments</dt>")
    facts = html[start : html.index("</dl>", start)]

    assert re.findall(r'<a href="/t/alpha/\?segment=(\w+)"[^>]*>([^<]+)</a>', facts) == [
        ("champions", "Champions"),
        ("enterprise", "Enterprise"),
    ]
    assert "2 contacts, since" in facts


def test_an_account_in_no_segment_says_so(signed_in, tenant, enterprise):
    account = AccountFactory(tenant=tenant, name="Small Co", plan="starter")
    refresh(tenant)

    assert "In no segment" in signed_in.get(f"/t/alpha/accounts/{account.pk}/").content.decode()


def test_the_segments_members_page_opens_them_in_the_portfolio(signed_in, tenant, enterprise):
    html = signed_in.get(f"/t/alpha/settings/segments/{enterprise.pk}/members/").content.decode()

    assert '<a href="/t/alpha/?segment=enterprise">Open these accounts in the portfolio</a>' in html
