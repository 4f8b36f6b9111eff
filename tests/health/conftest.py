import datetime as dt

import pytest
from django.utils import timezone

from csplatform.rules.models import AccountMetrics, MetricDefinition
from health.services import scorecard_create
from lifecycle.models import AccountStage, Stage

from ..factories import AccountFactory


def thresholds(source, bad, good, weight=1, direction="higher_is_better", missing="skip", label=None):
    measure = {
        "source": source, "weight": weight, "missing": missing,
        "mapping": {"type": "thresholds", "bad": bad, "good": good, "direction": direction},
    }
    if label:
        measure["label"] = label
    return measure


def make_stage(tenant, key, position=0, **fields):
    return Stage.objects.create(tenant=tenant, key=key, name=key.replace("_", " ").title(), position=position, **fields)


def place(account, stage):
    now = timezone.now()
    return AccountStage.objects.create(
        tenant=account.tenant, account=account, stage=stage, entered_at=now, entered_day=now.date().toordinal()
    )


def set_metrics(account, **values):
    AccountMetrics.objects.for_tenant(account.tenant).update_or_create(
        account=account, defaults={"tenant": account.tenant, "values": values, "computed_at": timezone.now()}
    )


def make_account(tenant, stage=None, **metrics):
    account = AccountFactory(tenant=tenant)
    if stage is not None:
        place(account, stage)
    set_metrics(account, **metrics)
    return account


@pytest.fixture
def logins_metric(tenant):
    return MetricDefinition.objects.create(
        tenant=tenant, key="logins_30d", label="Logins in the last 30 days", event_names=["login"], window_days=30
    )


@pytest.fixture
def default_card(tenant, logins_metric):
    """Tenant default: the tenant metric logins_30d from 0 (bad) to 20 (good)."""
    return scorecard_create(
        tenant=tenant, actor=None, name="Default", measures=[thresholds("logins_30d", 0, 20, label="Logins in the last 30 days")]
    )


@pytest.fixture
def onboarding(tenant):
    return make_stage(tenant, "onboarding", position=0)


@pytest.fixture
def churned(tenant):
    """A terminal stage: the customers who left."""
    return make_stage(tenant, "churned", position=9, is_terminal=True)


@pytest.fixture
def onboarding_card(tenant, onboarding):
    """Onboarding: active_contacts_7d from 0 to 4."""
    return scorecard_create(
        tenant=tenant, actor=None, name="Onboarding", stage=onboarding,
        measures=[thresholds("active_contacts_7d", 0, 4, label="People active in the last 7 days")],
    )


def days_ago(today, n):
    return today - dt.timedelta(days=n)
