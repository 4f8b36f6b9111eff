import datetime as dt
import re
from html import unescape

import pytest
from django.utils import timezone

from csplatform.customers.models import DailyRollup
from csplatform.tenancy.timezones import tenant_today
from lifecycle.models import Stage
from lifecycle.services import account_move_stage

from ..factories import AccountFactory, ContactFactory, UsageEventFactory
from ..pages.conftest import queries_per_request

pytestmark = pytest.mark.django_db


def account_names(response):
    """Account names in the portfolio table, in page order."""
    html = response.content.decode()
    table = html[html.index('<table class="accounts">') : html.index("</table>")]
    return [unescape(name) for name in re.findall(r'<th scope="row"><a href="[^"]+">([^<]+)</a>', table)]


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


def test_portfolio_lists_only_the_tenants_own_accounts(signed_in, tenant, other_tenant):
    AccountFactory(tenant=tenant, name="Alpha Customer")
    AccountFactory(tenant=other_tenant, name="Beta Customer")
    assert account_names(signed_in.get("/t/alpha/")) == ["Alpha Customer"]


def test_portfolio_row_shows_plan_mrr_owner_renewal_trial_end_and_last_activity(signed_in, tenant, bob):
    account = AccountFactory(
        tenant=tenant,
        name="Granite Labs",
        plan="enterprise",
        mrr=12500,
        owner=bob,
        renewal_date=dt.date(2031, 4, 1),
        trial_ends_at=dt.datetime(2030, 2, 3, 12, tzinfo=dt.timezone.utc),
    )
    UsageEventFactory(account=account, timestamp=timezone.now() - dt.timedelta(days=3))
    html = signed_in.get("/t/alpha/").content.decode()
    for text in ("Enterprise", "12,500", "Bob CSM", "Apr 1, 2031", "Feb 3, 2030", "3\xa0days ago"):
        assert text in html


def test_search_filters_by_name_or_domain_and_stays_in_the_form(signed_in, tenant):
    AccountFactory(tenant=tenant, name="Cobalt Travel", domain="cobalt.example")
    AccountFactory(tenant=tenant, name="Maple Foods", domain="maplefoods.example")
    response = signed_in.get("/t/alpha/?q=cobalt")
    assert account_names(response) == ["Cobalt Travel"]
    assert account_names(signed_in.get("/t/alpha/?q=maplefoods")) == ["Maple Foods"]
    assert 'name="q" value="cobalt"' in response.content.decode()


def test_plan_owner_and_renewal_filters_narrow_the_list(signed_in, tenant, alice, bob):
    today = tenant_today(tenant)
    AccountFactory(tenant=tenant, name="Soon Pro", plan="pro", owner=bob, renewal_date=today + dt.timedelta(days=20))
    AccountFactory(tenant=tenant, name="Late Pro", plan="pro", owner=alice, renewal_date=today + dt.timedelta(days=80))
    AccountFactory(tenant=tenant, name="Soon Starter", plan="starter", owner=bob, renewal_date=today)
    AccountFactory(tenant=tenant, name="Lapsed", plan="starter", renewal_date=today - dt.timedelta(days=1))
    assert account_names(signed_in.get("/t/alpha/?plan=pro")) == ["Late Pro", "Soon Pro"]
    assert account_names(signed_in.get(f"/t/alpha/?owner={bob.pk}")) == ["Soon Pro", "Soon Starter"]
    assert account_names(signed_in.get("/t/alpha/?renewal=30")) == ["Soon Pro", "Soon Starter"]
    assert account_names(signed_in.get("/t/alpha/?renewal=90&plan=pro")) == ["Late Pro", "Soon Pro"]
    assert account_names(signed_in.get("/t/alpha/?renewal=overdue")) == ["Lapsed"]


def test_a_customer_who_left_is_among_no_renewals_coming_or_overdue(signed_in, tenant, alice):
    today = tenant_today(tenant)
    churned = Stage.objects.create(tenant=tenant, key="churned", name="Churned", is_terminal=True, outcome="churned")
    adopting = Stage.objects.create(tenant=tenant, key="adopting", name="Adopting", position=1, is_initial=True)
    for name, stage, renews in (("Gone Soon", churned, 10), ("Gone Lapsed", churned, -5), ("Staying", adopting, 10),
                                ("Lapsed", adopting, -5), ("Never Placed", None, 10)):
        account = AccountFactory(tenant=tenant, name=name, renewal_date=today + dt.timedelta(days=renews))
        if stage:
            account_move_stage(tenant=tenant, account=account, to_stage=stage, actor=alice, reason="Test setup.")

    assert account_names(signed_in.get("/t/alpha/?renewal=30")) == ["Never Placed", "Staying"]
    assert account_names(signed_in.get("/t/alpha/?renewal=overdue")) == ["Lapsed"]
    assert account_names(signed_in.get("/t/alpha/?stage=churned")) == ["Gone Lapsed", "Gone Soon"]


def test_my_accounts_shows_only_accounts_the_user_owns(client, tenant, alice, bob):
    AccountFactory(tenant=tenant, name="Bobs Account", owner=bob)
    AccountFactory(tenant=tenant, name="Alices Account", owner=alice)
    client.force_login(bob)
    assert account_names(client.get("/t/alpha/?scope=mine")) == ["Bobs Account"]
    assert account_names(client.get("/t/alpha/")) == ["Alices Account", "Bobs Account"]


def test_owner_filter_offers_only_members_of_the_tenant(signed_in, tenant, charlie):
    response = signed_in.get(f"/t/alpha/?owner={charlie.pk}")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Charlie Outsider" not in html
    assert "Select a valid choice" in html


def test_unknown_filter_values_are_reported_not_fatal(signed_in, tenant):
    AccountFactory(tenant=tenant, name="Still Listed")
    response = signed_in.get("/t/alpha/?plan=platinum&renewal=tomorrow&sort=secret&page=abc")
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert account_names(response) == ["Still Listed"]


def test_columns_sort_both_ways_and_keep_the_filters_in_the_links(signed_in, tenant):
    for name, mrr in (("Small", 100), ("Large", 9000), ("Medium", 700)):
        AccountFactory(tenant=tenant, name=name, mrr=mrr, plan="pro")
    response = signed_in.get("/t/alpha/?plan=pro&sort=-mrr")
    assert account_names(response) == ["Large", "Medium", "Small"]
    assert account_names(signed_in.get("/t/alpha/?plan=pro&sort=mrr")) == ["Small", "Medium", "Large"]
    html = response.content.decode()
    assert 'aria-sort="descending"' in html
    assert 'href="?plan=pro&amp;sort=mrr"' in html  # the header toggles to ascending and keeps the plan


def test_sorting_by_last_activity_puts_accounts_without_events_last(signed_in, tenant):
    now = timezone.now()
    recent = AccountFactory(tenant=tenant, name="Recent")
    older = AccountFactory(tenant=tenant, name="Older")
    AccountFactory(tenant=tenant, name="Silent")
    UsageEventFactory(account=recent, timestamp=now - dt.timedelta(hours=2))
    UsageEventFactory(account=older, timestamp=now - dt.timedelta(days=9))
    assert account_names(signed_in.get("/t/alpha/?sort=-activity")) == ["Recent", "Older", "Silent"]
    assert account_names(signed_in.get("/t/alpha/?sort=activity")) == ["Older", "Recent", "Silent"]


def test_portfolio_is_paginated_and_page_links_keep_the_filters(signed_in, tenant):
    for number in range(30):
        AccountFactory(tenant=tenant, name=f"Account {number:02d}", plan="pro")
    first = signed_in.get("/t/alpha/?plan=pro")
    assert len(account_names(first)) == 25
    assert 'href="?plan=pro&amp;page=2"' in first.content.decode()
    second = signed_in.get("/t/alpha/?plan=pro&page=2")
    assert account_names(second) == [f"Account {number}" for number in range(25, 30)]
    assert "Page 2 of 2" in second.content.decode()


def test_portfolio_query_count_does_not_grow_with_the_data(signed_in, tenant, bob):
    def add_accounts(count):
        for _ in range(count):
            account = AccountFactory(tenant=tenant, owner=bob, plan="pro")
            ContactFactory(account=account)
            UsageEventFactory(account=account)

    url = f"/t/alpha/?plan=pro&owner={bob.pk}&renewal=&q=&sort=-activity"
    add_accounts(2)
    signed_in.get(url)  # warm the session and content-type caches
    few = queries_per_request(signed_in, url, tenant)
    add_accounts(60)
    assert queries_per_request(signed_in, url + "&page=2", tenant) == few


def test_empty_portfolio_explains_how_to_send_accounts(signed_in, tenant):
    html = signed_in.get("/t/alpha/").content.decode()
    assert "No accounts yet" in html
    assert 'href="/t/alpha/settings/api-keys/"' in html
    assert 'href="/api/docs/"' in html


def test_filters_that_match_nothing_offer_to_clear_them(signed_in, tenant):
    AccountFactory(tenant=tenant, name="Anything")
    html = signed_in.get("/t/alpha/?q=zzz").content.decode()
    assert "No accounts match these filters" in html
    assert "No accounts yet" not in html


def test_account_page_shows_facts_contacts_and_recent_events(signed_in, tenant, bob):
    account = AccountFactory(
        tenant=tenant,
        name="Juniper Health",
        plan="pro",
        mrr=1800,
        owner=bob,
        renewal_date=dt.date(2031, 1, 15),
        card_expires_at=dt.date(2030, 12, 31),
        signup_date=dt.date(2024, 5, 6),
    )
    ContactFactory(account=account, name="Rosa Patel", role="champion", last_seen_at=timezone.now())
    UsageEventFactory(account=account, event="feature_used", properties={"feature": "exports"})
    response = signed_in.get(f"/t/alpha/accounts/{account.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("Juniper Health", "1,800", "Bob CSM", "Jan 15, 2031", "Dec 31, 2030", "May 6, 2024"):
        assert text in html
    assert "Rosa Patel" in html and "Champion" in html
    assert "feature_used" in html and "feature: exports" in html


def test_account_page_counts_events_per_day_from_the_rollups(signed_in, tenant):
    account = AccountFactory(tenant=tenant)
    today = tenant_today(tenant)
    for days_ago, event, contact_ref, count in (
        (0, "login", 0, 4),
        (0, "login", 9, 3),
        (29, "invite_sent", 0, 2),
        (30, "ancient", 0, 5),
    ):
        day = today - dt.timedelta(days=days_ago)
        DailyRollup.objects.create(
            tenant=tenant, account=account, day=day, event=event, contact_ref=contact_ref, count=count
        )
    response = signed_in.get(f"/t/alpha/accounts/{account.pk}/")
    rows = {row["day"]: row for row in response.context["usage"]}
    assert len(rows) == 30
    assert rows[today] == {"day": today, "events": 7, "active_contacts": 1}
    assert rows[today - dt.timedelta(days=29)]["events"] == 2
    assert today - dt.timedelta(days=30) not in rows


def test_account_of_another_tenant_is_not_found(signed_in, other_tenant):
    foreign = AccountFactory(tenant=other_tenant, name="Beta Secret")
    response = signed_in.get(f"/t/alpha/accounts/{foreign.pk}/")
    assert response.status_code == 404
    assert "Beta Secret" not in response.content.decode()


def test_account_page_of_a_tenant_you_do_not_belong_to_is_not_found(client, charlie, tenant):
    account = AccountFactory(tenant=tenant)
    client.force_login(charlie)
    assert client.get(f"/t/alpha/accounts/{account.pk}/").status_code == 404


def test_account_page_query_count_does_not_grow_with_contacts_and_events(signed_in, tenant):
    account = AccountFactory(tenant=tenant)
    url = f"/t/alpha/accounts/{account.pk}/"
    signed_in.get(url)  # warm the session and content-type caches
    before = queries_per_request(signed_in, url, tenant)
    for _ in range(12):
        contact = ContactFactory(account=account)
        UsageEventFactory(account=account, contact=contact)
    assert queries_per_request(signed_in, url, tenant) == before
