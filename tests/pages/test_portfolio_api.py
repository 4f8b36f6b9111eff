"""The portfolio through the API: what the dashboard's portfolio lists, with its filters and sort keys, for
integrations that keep stages and health in another system."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from alerts.models import Subject
from alerts.services import segment_create, segments_refresh
from csplatform.customers.models import UsageEvent
from csplatform.tenancy.services import api_key_create
from csplatform.tenancy.timezones import tenant_today
from lifecycle.models import AccountStage, Stage

from ..conftest import make_api_client
from ..factories import AccountFactory, ContactFactory
from .conftest import make_accounts, place, score

pytestmark = pytest.mark.django_db
URL = "/api/v1/portfolio/"


def names(response):
    assert response.status_code == 200, response.content
    return [row["name"] for row in response.json()["results"]]


@pytest.fixture
def portfolio(tenant, stages, bob):
    """Three accounts: Acme in renewal and red, renewing in two weeks, Bob's; Bolt adopting and green; Core not
    yet placed or scored."""
    today = tenant_today(tenant)
    acme = AccountFactory(tenant=tenant, name="Acme", external_id="acme", plan="enterprise", mrr=Decimal("2500"),
                          owner=bob, renewal_date=today + dt.timedelta(days=14))
    place(acme, stages["renewal"], days_ago=5)
    score(acme, 30, history=[55], delta_30d=-25)
    UsageEvent.objects.create(tenant=tenant, account=acme, message_id="m1", event="login",
                              timestamp=dt.datetime(2026, 11, 30, 15, 0, tzinfo=dt.UTC))
    bolt = AccountFactory(tenant=tenant, name="Bolt", plan="pro", mrr=Decimal("900"))
    place(bolt, stages["adoption"], days_ago=40)
    score(bolt, 85)
    AccountFactory(tenant=tenant, name="Core", plan="pro", mrr=Decimal("100"))
    return acme


def test_each_account_comes_with_its_stage_health_owner_and_last_activity(api, portfolio, bob):
    body = api.get(URL).json()

    assert body["count"] == 3 and body["next"] is None
    acme, bolt, core = body["results"]
    assert acme == {
        "id": portfolio.pk, "external_id": "acme", "name": "Acme", "domain": portfolio.domain, "plan": "enterprise",
        "stage": "renewal", "stage_name": "Renewal", "days_in_stage": 5,
        "health_colour": "red", "health_score": 30.0, "health_delta_30d": -25.0,
        "mrr": "2500.00", "currency": "USD", "renewal_date": portfolio.renewal_date.isoformat(),
        "trial_ends_at": None, "owner": "bob@alpha.example", "owner_name": "Bob CSM",
        "last_activity_at": "2026-11-30T15:00:00Z",
    }
    assert (bolt["stage"], bolt["health_colour"], bolt["owner"]) == ("adoption", "green", None)
    assert (core["stage"], core["health_score"], core["last_activity_at"]) == (None, None, None)


@pytest.mark.parametrize(
    "query, listed",
    [
        ("stage=renewal", ["Acme"]),
        ("health=green", ["Bolt"]),
        ("health=unscored", ["Core"]),
        ("plan=pro", ["Bolt", "Core"]),
        ("renewal=30", ["Acme"]),
        ("owner=none", ["Bolt", "Core"]),
        ("q=bol", ["Bolt"]),
        ("sort=-mrr", ["Acme", "Bolt", "Core"]),
        ("sort=health", ["Acme", "Bolt", "Core"]),
        ("sort=-days", ["Bolt", "Acme", "Core"]),
    ],
)
def test_the_portfolio_pages_filters_and_sort_keys_read_the_same_accounts(api, signed_in, portfolio, query, listed):
    assert names(api.get(f"{URL}?{query}")) == listed
    page = signed_in.get(f"/t/alpha/?{query}").content.decode()
    assert [name for name in ("Acme", "Bolt", "Core") if f">{name}</a>" in page] == sorted(listed)


def test_an_owner_is_named_by_member_id_as_on_the_page(api, portfolio, bob):
    assert names(api.get(f"{URL}?owner={bob.pk}")) == ["Acme"]


def test_a_segment_lists_the_accounts_in_it(api, tenant, alice, portfolio):
    ContactFactory(account=portfolio, role="champion")
    segment_create(tenant=tenant, actor=alice, key="champions", name="Champions",
                   criteria_text='contact.role == "champion"', subject=Subject.CONTACT)
    segments_refresh(tenant=tenant, account_ids=[portfolio.pk])

    assert names(api.get(f"{URL}?segment=champions")) == ["Acme"]


def test_my_accounts_are_the_key_creators(tenant, bob, portfolio):
    _, raw_key = api_key_create(tenant=tenant, name="Bob's sheet", scopes=["read"], created_by=bob)
    bobs = APIClient()
    bobs.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    assert names(bobs.get(f"{URL}?scope=mine")) == ["Acme"]


def test_the_customers_filter_reads_who_is_in_a_terminal_stage(api, tenant, portfolio):
    churned = Stage.objects.create(tenant=tenant, key="churned", name="Churned", position=9, is_terminal=True)
    AccountStage.objects.for_tenant(tenant).filter(account=portfolio).update(stage=churned)

    assert names(api.get(f"{URL}?customers=left")) == ["Acme"]
    assert names(api.get(f"{URL}?customers=current")) == ["Bolt", "Core"]


def test_a_key_that_acts_for_no_one_has_no_accounts_of_its_own(api, portfolio):
    assert names(api.get(f"{URL}?scope=mine")) == []


@pytest.mark.parametrize(
    "query, field",
    [("stage=launch", "stage"), ("health=purple", "health"), ("renewal=7", "renewal"), ("owner=99999", "owner"),
     ("segment=nope", "segment"), ("sort=colour", "sort"), ("plan=gold", "plan"), ("customers=past", "customers")],
)
def test_a_filter_the_tenant_does_not_have_is_a_400_naming_it(api, portfolio, query, field):
    response = api.get(f"{URL}?{query}")

    assert response.status_code == 400
    assert [error["field"] for error in response.json()["error"]["fields"]] == [field]


def test_pages_follow_each_other_and_read_a_fixed_number_of_queries(api, tenant, stages):
    make_accounts(tenant, stages, 12)

    with CaptureQueriesContext(connection) as first:
        body = api.get(f"{URL}?page_size=5").json()
    seen = [row["name"] for row in body["results"]]
    while body["next"]:
        body = api.get(body["next"]).json()
        seen += [row["name"] for row in body["results"]]
    make_accounts(tenant, stages, 30, prefix="More")
    with CaptureQueriesContext(connection) as larger:
        api.get(f"{URL}?page_size=5")

    assert seen == [f"Account {number:03d}" for number in range(12)]
    assert len(larger) == len(first)


def test_another_tenants_accounts_never_show_and_a_key_needs_the_read_scope(api, other_api, other_tenant, portfolio):
    AccountFactory(tenant=other_tenant, name="Theirs")

    assert names(other_api.get(URL)) == ["Theirs"]
    assert "Theirs" not in names(api.get(URL))
    assert make_api_client(portfolio.tenant, scopes=["ingest"]).get(URL).status_code == 403
