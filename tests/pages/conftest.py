"""Data for the dashboard page tests: stages, accounts placed in them, health scores and their history."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from csplatform.tenancy.models import Role
from csplatform.tenancy.summaries import tenant_summaries_forget
from csplatform.tenancy.timezones import tenant_today
from health.models import HealthScore, HealthSnapshot
from lifecycle.models import AccountStage, Stage, StageTransition, TransitionKind
from lifecycle.sla import day_number

from ..factories import AccountFactory, MembershipFactory, UserFactory

STAGES = [("onboarding", "Onboarding", "#2563eb"), ("adoption", "Adoption", "#16a34a"), ("renewal", "Renewal", "#9333ea")]
BANDS = ((40, "red"), (70, "yellow"), (101, "green"))


def colour_of(score):
    return next(colour for limit, colour in BANDS if score < limit)


@pytest.fixture
def viv(tenant):
    """A viewer of the tenant: sees everything, changes nothing."""
    user = UserFactory(email="viv@alpha.example", name="Viv Viewer")
    MembershipFactory(tenant=tenant, user=user, role=Role.VIEWER)
    return user


@pytest.fixture
def stages(tenant):
    return {
        key: Stage.objects.create(
            tenant=tenant, key=key, name=name, colour=colour, position=position, is_initial=position == 1
        )
        for position, (key, name, colour) in enumerate(STAGES, start=1)
    }


def place(account, stage, *, days_ago=0):
    """Put an account in a stage as the pipeline would: the state and its initial transition."""
    at = timezone.now() - dt.timedelta(days=days_ago)
    AccountStage.objects.create(
        tenant=account.tenant, account=account, stage=stage, entered_at=at, entered_day=day_number(at, account.tenant)
    )
    StageTransition.objects.create(
        tenant=account.tenant, account=account, to_stage=stage, to_key=stage.key, at=at, kind=TransitionKind.INITIAL
    )


def score(account, value, *, history=(), breakdown=None, delta_30d=None):
    """Give an account a current health score and daily snapshots: `history` is scores of the days before today."""
    breakdown = breakdown or [
        {"source": "logins_30d", "label": "Logins in the last 30 days", "value": 12.0, "points": value,
         "weight": 1, "skipped": False, "contribution": value},
    ]
    HealthScore.objects.create(
        tenant=account.tenant, account=account, score=value, colour=colour_of(value), breakdown=breakdown,
        computed_score=value, computed_colour=colour_of(value), delta_30d=delta_30d, computed_at=timezone.now(),
    )
    today = tenant_today(account.tenant)
    days = [*history, value]
    HealthSnapshot.objects.bulk_create(
        HealthSnapshot(
            tenant=account.tenant, account=account, day=today - dt.timedelta(days=len(days) - 1 - offset),
            score=past, colour=colour_of(past), breakdown=breakdown,
        )
        for offset, past in enumerate(days)
    )


def make_accounts(tenant, stages, count, *, prefix="Account"):
    """`count` accounts spread over the stages, each scored with ten days of history."""
    keys = list(stages)
    accounts = []
    for number in range(count):
        account = AccountFactory(tenant=tenant, name=f"{prefix} {number:03d}", renewal_date=tenant_today(tenant))
        place(account, stages[keys[number % len(keys)]], days_ago=number % 9)
        value = (number * 17) % 100
        score(account, value, history=[(value + step * 3) % 100 for step in range(9)])
        accounts.append(account)
    return accounts


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


def queries_per_request(client, url, tenant):
    """The queries of one GET of `url` as the first request of a minute runs it, summaries computed afresh."""
    tenant_summaries_forget(tenant)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries.captured_queries)
