"""Acceptance: on the seeded demo tenant, health tells the account patterns apart.

The demo seed shapes each account's usage after a pattern it records in
`attributes["demo_pattern"]`; `demo_setup` then gives the tenant its stages
and default scorecards, replays its 90 past days (stage moves, daily health,
playbook runs) and runs the pipeline for today.
"""

import datetime as dt
import io
from collections import Counter, defaultdict

import pytest
from django.core.management import call_command
from django.utils import timezone

from csplatform.customers.demo import demo_seed
from csplatform.customers.models import Account
from csplatform.tenancy.timezones import tenant_today, tenant_zone
from health.analysis import scorecard_backtest
from health.models import HealthSnapshot, Scorecard

from ..conftest import made_once

pytestmark = pytest.mark.django_db

ACCOUNTS = 90
HISTORY_DAYS = 90


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """Seed and set up the demo once for the module."""
    with made_once(django_db_blocker):
        tenant = demo_seed(accounts=ACCOUNTS).tenants[0]
        call_command("demo_setup", "--tenant", tenant.slug, "--days", str(HISTORY_DAYS), stdout=io.StringIO())
        yield tenant


def colours_by_pattern(tenant):
    colours = defaultdict(Counter)
    for pattern, colour in Account.objects.for_tenant(tenant).values_list("attributes__demo_pattern", "health__colour"):
        colours[pattern][colour or "unscored"] += 1
    return colours


def share(counter, *colours):
    return sum(counter[colour] for colour in colours) / sum(counter.values())


def test_demo_health_tells_healthy_accounts_from_failing_ones(demo):
    colours = colours_by_pattern(demo)

    assert share(colours["declining"], "red", "yellow") == 1, colours
    assert share(colours["dormant"], "red", "yellow") == 1, colours
    assert share(colours["healthy"], "green") >= 0.8, colours


def test_every_demo_account_has_a_score_a_breakdown_and_a_day_by_day_history_until_it_left(demo):
    accounts = list(Account.objects.for_tenant(demo).select_related("health", "lifecycle__stage"))
    today = tenant_today(demo)
    first_day = today - dt.timedelta(days=HISTORY_DAYS - 1)

    assert all(a.health.score is not None and a.health.breakdown for a in accounts)
    history = Counter(
        HealthSnapshot.objects.for_tenant(demo).filter(day__gte=first_day).values_list("account_id", flat=True)
    )
    departed = 0
    for account in accounts:
        # A snapshot for each day since it signed up (at most the 90 days), up to the day it left if it did.
        signed_up = max(account.signup_date, first_day)
        last_day = today
        if account.lifecycle.stage.is_terminal:
            departed += 1
            last_day = dt.date.fromordinal(account.lifecycle.entered_day)
            assert timezone.localdate(account.health.computed_at, tenant_zone(demo)) == last_day, account.name
        assert history[account.pk] == (last_day - signed_up).days + 1, account.name
    assert max(history.values()) == HISTORY_DAYS
    assert departed


def test_every_churned_demo_account_was_red_or_yellow_before_it_churned(demo):
    for account in Account.objects.for_tenant(demo).filter(attributes__has_key="churned_at"):
        churned_at = dt.date.fromisoformat(account.attributes["churned_at"])
        last = HealthSnapshot.objects.for_tenant(demo).filter(account=account, day__lt=churned_at).latest("day")

        assert last.colour in ("red", "yellow"), (account.name, last.day, last.score)


def test_the_backtest_of_the_adoption_scorecard_flags_the_churned_demo_accounts_before_they_churn(demo):
    adoption = Scorecard.objects.for_tenant(demo).get(stage__key="adopting").published_version

    backtest = scorecard_backtest(tenant=demo, measures=adoption.measures, days=HISTORY_DAYS)

    churned = backtest["churned_accounts"]
    assert churned and all(account["snapshots"] for account in churned)
    assert backtest["levels"]["red_or_yellow"]["recall"] == 1.0, churned
    assert all(account["flagged_days_before_churn"] >= 1 for account in churned), churned
