import datetime as dt
import json
import re

import pytest
from django.utils import timezone

from csplatform.tenancy.timezones import tenant_today
from lifecycle.models import StageTransition, TransitionKind

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
    assert html.count('<canvas data-chart="') == 4  # onboarding has no finished cohort yet
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


def test_reports_without_stages_point_to_the_templates(signed_in, tenant):
    html = signed_in.get("/t/alpha/reports/").content.decode()
    assert "No lifecycle stages yet" in html


def test_reports_run_the_same_number_of_queries_for_few_and_many_accounts(
    signed_in, tenant, stages, django_assert_max_num_queries
):
    make_accounts(tenant, stages, 3)
    with django_assert_max_num_queries(16):
        assert signed_in.get("/t/alpha/reports/").status_code == 200
    make_accounts(tenant, stages, 60, prefix="More")
    with django_assert_max_num_queries(16):
        assert signed_in.get("/t/alpha/reports/").status_code == 200


def test_reports_of_a_tenant_you_do_not_belong_to_are_not_found(client, charlie, tenant, stages):
    client.force_login(charlie)
    assert client.get("/t/alpha/reports/").status_code == 404
