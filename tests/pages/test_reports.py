import datetime as dt
import json
import re
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from csplatform.customers.services import account_update, accounts_assign_owner
from csplatform.tenancy.timezones import tenant_today
from lifecycle.models import Stage, StageTransition, TransitionKind
from lifecycle.services import account_move_stage

from ..factories import AccountFactory
from .conftest import make_accounts, place, score

pytestmark = pytest.mark.django_db


def chart_config(html, chart_id):
    match = re.search(rf'<script id="{chart_id}" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


def test_reports_embed_each_chart_as_json_with_a_table_of_the_same_numbers(signed_in, tenant, stages):
    today = tenant_today(tenant)
    for name, stage, value, mrr, renews_in in (
        ("Ada", "onboarding", 20, 100, 10),
        ("Bolt", "onboarding", 90, 300, 45),
        ("Cyan", "renewal", 55, 1000, 200),
    ):
        account = AccountFactory(tenant=tenant, name=name, mrr=mrr, renewal_date=today + dt.timedelta(days=renews_in))
        place(account, stages[stage])
        score(account, value, history=[value])
    html = signed_in.get("/t/alpha/reports/").content.decode()

    mrr = chart_config(html, "chart-mrr")
    assert mrr["data"]["labels"] == ["Onboarding", "Adoption", "Renewal"]
    assert mrr["data"]["datasets"][0]["data"] == [400.0, 0.0, 1000.0]

    renewals = chart_config(html, "chart-renewals")
    by_colour = {dataset["label"]: dataset["data"] for dataset in renewals["data"]["datasets"]}
    assert by_colour["Red"] == [1, 0, 0] and by_colour["Green"] == [0, 1, 0] and by_colour["Yellow"] == [0, 0, 0]

    health = chart_config(html, "chart-health")
    assert len(health["data"]["labels"]) == 2  # yesterday and today
    assert sum(dataset["data"][-1] for dataset in health["data"]["datasets"]) == 3

    funnel = chart_config(html, "chart-funnel")
    assert funnel["data"]["datasets"][0]["data"] == [2, 0, 1]
    assert "<th scope=\"row\">Onboarding</th><td class=\"num\">2</td>" in html.replace("\n", "").replace("  ", "")
    assert html.count('<canvas data-chart="') == 5  # onboarding has no finished cohort yet
    assert "No account has finished onboarding yet." in html


def test_time_to_onboard_is_reported_per_signup_month(signed_in, tenant, stages):
    account = AccountFactory(tenant=tenant, signup_date=dt.date(2025, 3, 4))
    place(account, stages["onboarding"], days_ago=12)
    StageTransition.objects.create(
        tenant=tenant, account=account, from_stage=stages["onboarding"], from_key="onboarding",
        to_stage=stages["adoption"], to_key="adoption", at=timezone.now() - dt.timedelta(days=2),
        kind=TransitionKind.AUTOMATIC,
    )
    html = signed_in.get("/t/alpha/reports/").content.decode()
    config = chart_config(html, "chart-onboarding")
    assert config["data"]["labels"] == ["2025-03"]
    assert config["data"]["datasets"][0]["data"] == [10.0]


def test_a_month_whose_accounts_are_all_still_onboarding_is_listed_without_a_median(signed_in, tenant, stages):
    for name in ("Ada", "Bolt"):
        place(AccountFactory(tenant=tenant, name=name, signup_date=dt.date(2025, 4, 1)), stages["onboarding"])

    html = signed_in.get("/t/alpha/reports/").content.decode().replace("\n", "")

    assert '<th scope="row">2025-04</th><td class="num">0</td><td class="num">—</td><td class="num">2</td>' in html
    assert "No account has finished onboarding yet." in html and 'id="chart-onboarding"' not in html


def bobs_and_the_rest(tenant, stages, bob, alice):
    """Two of Bob's accounts (one renewing red), one of Alice's, one with no owner."""
    today = tenant_today(tenant)
    for name, owner, stage, value, mrr in (
        ("Ada", bob, "onboarding", 20, 100),
        ("Bolt", bob, "renewal", 90, 300),
        ("Cyan", alice, "renewal", 30, 1000),
        ("Dune", None, "adoption", 70, 50),
    ):
        account = AccountFactory(
            tenant=tenant, name=name, owner=owner, mrr=mrr, renewal_date=today + dt.timedelta(days=10)
        )
        place(account, stages[stage])
        score(account, value, history=[value])


def test_reports_count_only_the_chosen_members_accounts(signed_in, tenant, stages, alice, bob):
    bobs_and_the_rest(tenant, stages, bob, alice)

    html = signed_in.get(f"/t/alpha/reports/?owner={bob.pk}").content.decode()

    assert chart_config(html, "chart-funnel")["data"]["datasets"][0]["data"] == [1, 0, 1]
    assert chart_config(html, "chart-mrr")["data"]["datasets"][0]["data"] == [100.0, 0.0, 300.0]
    renewals = {d["label"]: d["data"] for d in chart_config(html, "chart-renewals")["data"]["datasets"]}
    assert renewals["Red"] == [1, 0, 0] and renewals["Green"] == [1, 0, 0]
    health = chart_config(html, "chart-health")["data"]["datasets"]
    assert sum(dataset["data"][-1] for dataset in health) == 2
    assert f'<option value="{bob.pk}" selected>Bob CSM</option>' in html


def test_each_owners_current_customers_are_counted_by_health_with_their_mrr_and_renewals(
    signed_in, tenant, stages, alice, bob
):
    bobs_and_the_rest(tenant, stages, bob, alice)
    churned = AccountFactory(tenant=tenant, name="Gone", owner=bob, mrr=900)
    place(churned, Stage.objects.create(tenant=tenant, key="churned", name="Churned", position=9, is_terminal=True))
    score(churned, 10)

    html = signed_in.get("/t/alpha/reports/").content.decode()

    chart = chart_config(html, "chart-owners")
    assert chart["data"]["labels"] == ["Alice Admin", "Bob CSM", "No owner"]
    by_colour = {dataset["label"]: dataset["data"] for dataset in chart["data"]["datasets"]}
    assert (by_colour["Green"], by_colour["Yellow"], by_colour["Red"]) == ([0, 1, 1], [0, 0, 0], [1, 1, 0])
    table = html.replace("\n", "").replace("  ", "")
    assert (f'<th scope="row"><a href="/t/alpha/?customers=current&amp;owner={bob.pk}">Bob CSM</a></th>'
            '<td class="num">1</td><td class="num">0</td><td class="num">1</td>'
            '<td class="num">0</td><td class="num">2</td><td class="num">400</td><td class="num">2</td>') in table
    assert '<a href="/t/alpha/?customers=current&amp;owner=none">No owner</a>' in table
    assert chart_config(
        signed_in.get(f"/t/alpha/reports/?owner={bob.pk}").content.decode(), "chart-owners"
    )["data"]["labels"] == ["Bob CSM"]


def test_reports_of_me_and_of_accounts_with_no_owner(client, tenant, stages, alice, bob):
    bobs_and_the_rest(tenant, stages, bob, alice)
    client.force_login(bob)

    mine = client.get(f"/t/alpha/reports/?owner={bob.pk}").content.decode()
    nobodys = client.get("/t/alpha/reports/?owner=none").content.decode()

    assert f'<option value="{bob.pk}" selected>Me</option>' in mine
    assert chart_config(nobodys, "chart-mrr")["data"]["datasets"][0]["data"] == [0.0, 50.0, 0.0]


def test_an_owner_that_is_not_a_member_is_named_and_the_reports_count_everyone(
    signed_in, tenant, stages, alice, bob, charlie
):
    bobs_and_the_rest(tenant, stages, bob, alice)

    html = signed_in.get(f"/t/alpha/reports/?owner={charlie.pk}").content.decode()

    assert f"Select a valid choice. {charlie.pk} is not one of the available choices." in html
    assert "The reports count everyone's accounts." in html
    assert chart_config(html, "chart-funnel")["data"]["datasets"][0]["data"] == [1, 1, 2]


def test_reports_without_stages_point_to_the_templates(signed_in, tenant):
    html = signed_in.get("/t/alpha/reports/").content.decode()
    assert "No lifecycle stages yet" in html


def test_reports_run_the_same_number_of_queries_for_few_and_many_accounts(
    signed_in, tenant, stages, django_assert_max_num_queries
):
    make_accounts(tenant, stages, 3)
    for url in ("/t/alpha/reports/", "/t/alpha/reports/?owner=none"):
        with django_assert_max_num_queries(23):
            assert signed_in.get(url).status_code == 200
    make_accounts(tenant, stages, 60, prefix="More")
    for url in ("/t/alpha/reports/", "/t/alpha/reports/?owner=none"):
        with django_assert_max_num_queries(23):
            assert signed_in.get(url).status_code == 200


def test_reports_of_a_tenant_you_do_not_belong_to_are_not_found(client, charlie, tenant, stages):
    client.force_login(charlie)
    assert client.get("/t/alpha/reports/").status_code == 404


def mrr_changed(tenant, account, mrr, at, actor=None):
    with time_machine.travel(at, tick=False):
        account_update(tenant=tenant, account=account, fields={"mrr": Decimal(mrr)}, actor=actor)


def test_mrr_gained_and_lost_is_reported_per_month_of_the_tenant_with_the_largest_changes(
    signed_in, tenant, stages, bob
):
    tenant.timezone = "America/New_York"
    tenant.save()
    ada, bolt, cyan, dune = (AccountFactory(tenant=tenant, name=name, mrr=mrr) for name, mrr in
                             (("Ada", 100), ("Bolt", 300), ("Cyan", 1000), ("Dune", 50)))
    mrr_changed(tenant, dune, 80, dt.datetime(2026, 8, 20, 15, tzinfo=dt.UTC))  # before the three months
    mrr_changed(tenant, ada, 250, dt.datetime(2026, 10, 10, 15, tzinfo=dt.UTC), actor=bob)
    mrr_changed(tenant, bolt, 200, dt.datetime(2026, 11, 5, 15, tzinfo=dt.UTC))
    # Half past eleven on November 30 in New York: still November there.
    mrr_changed(tenant, cyan, 0, dt.datetime(2026, 12, 1, 4, 30, tzinfo=dt.UTC))
    mrr_changed(tenant, ada, 400, dt.datetime(2026, 12, 2, 15, tzinfo=dt.UTC))
    accounts_assign_owner(tenant=tenant, account_ids=[bolt.pk], owner=bob)

    with time_machine.travel(dt.datetime(2026, 12, 15, 15, tzinfo=dt.UTC), tick=False):
        html = signed_in.get("/t/alpha/reports/").content.decode()

    chart = chart_config(html, "chart-mrr-movements")
    assert chart["data"]["labels"] == ["October 2026", "November 2026", "December 2026"]
    assert [(d["label"], d["data"]) for d in chart["data"]["datasets"]] == [
        ("Expansion", [150.0, 0.0, 150.0]), ("Contraction", [0.0, -1100.0, 0.0])
    ]
    cells = re.sub(r"\s+", " ", html)
    assert ('<th scope="row">November 2026</th><td class="num">0</td><td class="num">0</td>'
            '<td class="num">-1,100</td><td class="num">2</td><td class="num">-1,100</td>') in cells
    largest = re.findall(r'accounts/\d+/activity/\?kind=change">(\w+)</a>', html)
    assert largest == ["Cyan", "Ada", "Ada", "Bolt"]
    assert "Bob CSM" in cells and '<td class="num">1,000.00</td> <td class="num">0.00</td> <td class="num">-1,000.00</td>' in cells


def test_mrr_changes_count_only_the_chosen_members_accounts(signed_in, tenant, stages, bob):
    mine, theirs = AccountFactory(tenant=tenant, mrr=100, owner=bob), AccountFactory(tenant=tenant, mrr=100)
    now = timezone.now()
    mrr_changed(tenant, mine, 160, now)
    mrr_changed(tenant, theirs, 900, now)

    html = signed_in.get(f"/t/alpha/reports/?owner={bob.pk}").content.decode()

    assert chart_config(html, "chart-mrr-movements")["data"]["datasets"][0]["data"][-1] == 60.0


def test_without_mrr_changes_the_report_says_so(signed_in, tenant, stages):
    AccountFactory(tenant=tenant, mrr=100)

    html = signed_in.get("/t/alpha/reports/").content.decode()

    assert "No account's MRR has changed in the last 3 months." in html


def left(tenant, account, stage, by, reason, at):
    with time_machine.travel(at, tick=False):
        account_move_stage(tenant=tenant, account=account, to_stage=stage, actor=by, reason=reason)


def test_customers_who_left_are_reported_per_month_with_their_churn_rate_reasons_and_mrr(
    signed_in, tenant, stages, alice, bob
):
    tenant.timezone = "America/New_York"
    tenant.save()
    churned = Stage.objects.create(tenant=tenant, key="churned", name="Churned", position=9, is_terminal=True,
                                   outcome="churned")
    ada, bolt, cyan, dune, eve = (AccountFactory(tenant=tenant, name=name, mrr=mrr, owner=owner) for name, mrr, owner in
                                  (("Ada", 500, None), ("Bolt", 300, None), ("Cyan", 1000, bob), ("Dune", 200, None),
                                   ("Eve", 90, None)))
    with time_machine.travel(dt.datetime(2026, 9, 1, 15, tzinfo=dt.UTC), tick=False):
        for account in (ada, bolt, cyan, dune):
            place(account, stages["onboarding"])
    left(tenant, bolt, churned, alice, "Chose a competitor", dt.datetime(2026, 11, 5, 15, tzinfo=dt.UTC))
    # Billing zeroed its MRR the day after: it had 300 when it left.
    mrr_changed(tenant, bolt, 0, dt.datetime(2026, 11, 6, 15, tzinfo=dt.UTC))
    # Half past eleven on November 30 in New York would be November; this is December 2 there.
    left(tenant, cyan, churned, alice, "Budget cut", dt.datetime(2026, 12, 2, 15, tzinfo=dt.UTC))
    left(tenant, dune, churned, bob, "Chose a competitor", dt.datetime(2026, 12, 3, 15, tzinfo=dt.UTC))
    with time_machine.travel(dt.datetime(2026, 12, 5, 15, tzinfo=dt.UTC), tick=False):
        place(eve, stages["onboarding"])

    with time_machine.travel(dt.datetime(2026, 12, 15, 15, tzinfo=dt.UTC), tick=False):
        html = signed_in.get("/t/alpha/reports/").content.decode()
        mine = signed_in.get(f"/t/alpha/reports/?owner={bob.pk}").content.decode()

    chart = chart_config(html, "chart-departures")
    assert chart["data"]["labels"] == ["October 2026", "November 2026", "December 2026"]
    assert chart["data"]["datasets"][0]["data"] == [0, 1, 2]
    cells = re.sub(r"\s+", " ", html)
    # Four in the lifecycle on November 1, one of whom left; three on December 1 (Eve came later), two left.
    assert ('<th scope="row">November 2026</th><td class="num">1</td><td class="num">4</td>'
            '<td class="num">25.0%</td><td class="num">300</td>') in cells
    assert ('<th scope="row">December 2026</th><td class="num">2</td><td class="num">3</td>'
            '<td class="num">66.7%</td><td class="num">1,200</td>') in cells
    assert ('<th scope="row">Chose a competitor</th><td class="num">2</td><td class="num">500</td>'
            '</tr><tr><th scope="row">Budget cut</th><td class="num">1</td><td class="num">1,000</td>') in cells
    assert re.findall(r'accounts/\d+/">(\w+)</a></th> <td><time', cells) == ["Dune", "Cyan", "Bolt"]
    assert '<td class="num">1,000</td> <td>Budget cut</td> <td>Alice Admin</td>' in cells
    assert chart_config(mine, "chart-departures")["data"]["datasets"][0]["data"] == [0, 0, 1]


def test_without_customers_leaving_the_report_says_so(signed_in, tenant, stages):
    place(AccountFactory(tenant=tenant), stages["onboarding"])

    html = signed_in.get("/t/alpha/reports/").content.decode()

    assert "No customer has left in the last 3 months." in html
