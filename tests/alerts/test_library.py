import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from alerts.library import ALERT_RULES, SEGMENTS, starter_alerts_install
from alerts.models import Alert, AlertRule, Segment
from alerts.services import alerts_evaluate
from csplatform.rules.metrics import metrics_compute
from tests.factories import AccountFactory, ContactFactory

from .conftest import move, send_events

pytestmark = pytest.mark.django_db
STARTER_KEYS = {entry["key"] for entry in SEGMENTS + ALERT_RULES}


def installed_keys(tenant):
    return set(Segment.objects.for_tenant(tenant).values_list("key", flat=True)) | set(
        AlertRule.objects.for_tenant(tenant).values_list("key", flat=True)
    )


def test_the_starter_set_fits_seed_001s_stages_and_installs_once(lifecycle_tenant, other_tenant, alice):
    created, refused = starter_alerts_install(tenant=lifecycle_tenant, actor=alice)

    assert refused == {}
    assert {obj.key for obj in created} == STARTER_KEYS == installed_keys(lifecycle_tenant)
    assert starter_alerts_install(tenant=lifecycle_tenant, actor=alice) == ([], {})
    assert installed_keys(other_tenant) == set()


def test_entries_naming_stages_the_tenant_lacks_are_refused_with_the_reason(tenant, alice):
    created, refused = starter_alerts_install(tenant=tenant, actor=alice)

    assert {obj.key for obj in created} == {"health_dropped"}
    assert set(refused) == STARTER_KEYS - {"health_dropped"}
    assert "renewal" in refused["card_expiring_in_renewal"]


def test_the_starter_card_rule_alerts_on_a_card_expiring_in_renewal(lifecycle_tenant, alice):
    expiring = AccountFactory(tenant=lifecycle_tenant, card_expires_at=timezone.localdate() + dt.timedelta(days=9))
    ContactFactory(account=expiring, role="champion")
    move(lifecycle_tenant, expiring, "renewal")
    starter_alerts_install(tenant=lifecycle_tenant, actor=alice)

    alerts_evaluate(tenant=lifecycle_tenant, account_ids=[expiring.pk])

    alert = Alert.objects.for_tenant(lifecycle_tenant).get(account=expiring)
    assert (alert.rule.key, alert.severity) == ("card_expiring_in_renewal", "critical")


def test_the_starter_no_champion_rule_alerts_once_the_champion_of_a_renewing_account_is_removed(
    api, lifecycle_tenant, alice
):
    left, kept, onboarding = AccountFactory.create_batch(3, tenant=lifecycle_tenant)
    for account, stage in ((left, "renewal"), (kept, "adopting"), (onboarding, "onboarding")):
        move(lifecycle_tenant, account, stage)
    champions = [ContactFactory(account=account, role="champion") for account in (left, kept)]
    ContactFactory(account=kept, role="champion")
    starter_alerts_install(tenant=lifecycle_tenant, actor=alice)
    accounts = [left.pk, kept.pk, onboarding.pk]
    alerts_evaluate(tenant=lifecycle_tenant, account_ids=accounts)
    assert not Alert.objects.for_tenant(lifecycle_tenant).exists()

    for champion in champions:
        assert api.delete(f"/api/v1/contacts/{champion.pk}/").status_code == 204
    alerts_evaluate(tenant=lifecycle_tenant, account_ids=accounts)

    (alert,) = Alert.objects.for_tenant(lifecycle_tenant)
    assert (alert.account, alert.rule.key, alert.severity) == (left, "no_champion", "warning")


def test_the_starter_win_back_rule_alerts_on_a_customer_back_in_the_product_a_week_after_leaving(
    api, lifecycle_tenant, alice
):
    back, quiet = AccountFactory.create_batch(2, tenant=lifecycle_tenant)
    for account in (back, quiet):
        with time_machine.travel(timezone.now() - dt.timedelta(days=10)):
            move(lifecycle_tenant, account, "churned", actor=alice)
    send_events(api, back, ContactFactory(account=back), "login", days_ago=0)
    starter_alerts_install(tenant=lifecycle_tenant, actor=alice)
    metrics_compute(tenant=lifecycle_tenant, account_ids=[back.pk, quiet.pk])

    alerts_evaluate(tenant=lifecycle_tenant, account_ids=[back.pk, quiet.pk])

    (alert,) = Alert.objects.for_tenant(lifecycle_tenant)
    assert (alert.account, alert.rule.key, alert.severity) == (back, "churned_back_in_the_product", "info")
