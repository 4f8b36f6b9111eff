"""Alert rules over generated data: opening, dedupe, auto-resolve, cooldown, the lifecycle and notifications."""

import datetime as dt
import json
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.models import Alert, AlertStatus, DeliveryStatus, Notification, Resolution, SegmentMembership, Subject
from alerts.notifications import notifications_send_due
from alerts.services import (
    alert_acknowledge,
    alert_raise,
    alert_resolve,
    alert_rule_create,
    alerts_evaluate,
    segment_create,
    segments_refresh,
)
from csplatform.customers.models import Account
from csplatform.rules import compile_criteria
from csplatform.rules.metrics import metrics_compute
from csplatform.tenancy.timezones import tenant_today
from health.models import HealthScore, HealthSnapshot
from health.services import health_score
from tests.factories import AccountFactory, ContactFactory

from .conftest import move, send_events

pytestmark = pytest.mark.django_db


def all_ids(tenant):
    return list(Account.objects.for_tenant(tenant).values_list("pk", flat=True))


def rule(tenant, condition, **fields):
    fields.setdefault("key", "rule")
    fields.setdefault("name", "Rule")
    return alert_rule_create(tenant=tenant, actor=None, condition_text=condition, **fields)


def test_a_health_drop_of_15_points_in_7_days_opens_an_alert(lifecycle_tenant):
    tenant = lifecycle_tenant
    dropped, steady = AccountFactory.create_batch(2, tenant=tenant)
    metrics_compute(tenant=tenant, account_ids=all_ids(tenant))
    health_score(tenant=tenant, account_ids=all_ids(tenant))
    scores = dict(HealthScore.objects.for_tenant(tenant).values_list("account_id", "computed_score"))
    week_ago = tenant_today(tenant) - dt.timedelta(days=7)
    # A week ago one account scored 20 points more than today, the other 5.
    for account, above in ((dropped, 20), (steady, 5)):
        HealthSnapshot.objects.for_tenant(tenant).create(
            tenant=tenant, account=account, day=week_ago, score=scores[account.pk] + above, colour="green"
        )
    health_score(tenant=tenant, account_ids=all_ids(tenant))
    rule(tenant, "health.delta_7d <= -15", name="Health dropped")

    changes = alerts_evaluate(tenant=tenant, account_ids=all_ids(tenant))

    assert list(Alert.objects.for_tenant(tenant).filter(pk__in=changes.opened).values_list("account", flat=True)) == [
        dropped.pk
    ]


def test_no_activity_for_14_days_opens_an_alert(api, tenant):
    quiet, busy = AccountFactory.create_batch(2, tenant=tenant)
    send_events(api, quiet, ContactFactory(account=quiet), "login", days_ago=20)
    send_events(api, busy, ContactFactory(account=busy), "login", days_ago=1)
    metrics_compute(tenant=tenant, account_ids=all_ids(tenant))
    rule(tenant, "metric.days_since_last_seen >= 14", name="No logins for two weeks")

    changes = alerts_evaluate(tenant=tenant, account_ids=all_ids(tenant))

    opened = Alert.objects.for_tenant(tenant).filter(pk__in=changes.opened)
    assert [(alert.account_id, alert.title) for alert in opened] == [(quiet.pk, f"No logins for two weeks: {quiet.name}")]


def test_entering_a_segment_opens_an_alert_and_leaving_it_resolves_it(tenant, alice):
    risky = AccountFactory(tenant=tenant, attributes={"risk": "high"})
    calm = AccountFactory(tenant=tenant, attributes={"risk": "low"})
    segment_create(tenant=tenant, actor=alice, key="at_risk", name="At risk", criteria_text='account.attributes.risk == "high"')
    rule(tenant, 'segments contains "at_risk"', name="Entered at risk")
    segments_refresh(tenant=tenant, account_ids=all_ids(tenant))

    opened = alerts_evaluate(tenant=tenant, account_ids=all_ids(tenant)).opened

    assert list(Alert.objects.for_tenant(tenant).filter(pk__in=opened).values_list("account", flat=True)) == [risky.pk]
    # The segments field reads the same in SQL and in Python.
    criteria = compile_criteria('segments contains "at_risk"', tenant=tenant)
    for account in (risky, calm):
        in_sql = criteria.filter(Account.objects.for_tenant(tenant).filter(pk=account.pk)).exists()
        assert criteria.matches(account) == in_sql

    Account.objects.for_tenant(tenant).filter(pk=risky.pk).update(attributes={"risk": "low"})
    segments_refresh(tenant=tenant, account_ids=all_ids(tenant))
    changes = alerts_evaluate(tenant=tenant, account_ids=all_ids(tenant))

    assert changes.resolved == opened


def test_repeated_evaluation_keeps_one_active_alert_per_rule_and_account(tenant):
    accounts = AccountFactory.create_batch(3, tenant=tenant, plan="trial")
    rule(tenant, 'account.plan == "trial"')

    first = alerts_evaluate(tenant=tenant, account_ids=all_ids(tenant))
    alert_acknowledge(tenant=tenant, alert=Alert.objects.for_tenant(tenant).get(pk=first.opened[0]), user=None)
    second = alerts_evaluate(tenant=tenant, account_ids=all_ids(tenant))

    assert len(first.opened) == 3 and second.opened == [] and second.resolved == []
    assert Alert.objects.for_tenant(tenant).count() == len(accounts)


def test_a_customer_moved_to_churned_opens_no_alerts_and_its_open_ones_resolve(lifecycle_tenant, alice):
    tenant = lifecycle_tenant
    leaving, staying = AccountFactory.create_batch(2, tenant=tenant, plan="trial")
    rule(tenant, 'account.plan == "trial"')
    opened = alerts_evaluate(tenant=tenant, account_ids=all_ids(tenant)).opened

    move(tenant, leaving, "churned", actor=alice)
    changes = alerts_evaluate(tenant=tenant, account_ids=all_ids(tenant))

    gone = Alert.objects.for_tenant(tenant).get(account=leaving)
    assert len(opened) == 2 and changes.resolved == [gone.pk] and changes.opened == []
    assert (gone.status, gone.resolution) == (AlertStatus.RESOLVED, Resolution.AUTO)
    assert Alert.objects.for_tenant(tenant).get(account=staying).status == AlertStatus.OPEN


def test_a_rule_that_includes_terminal_stages_watches_the_customers_who_left(lifecycle_tenant, alice):
    tenant = lifecycle_tenant
    churned, active = AccountFactory.create_batch(2, tenant=tenant, plan="trial")
    move(tenant, churned, "churned", actor=alice)
    rule(tenant, 'stage == "churned" and account.plan == "trial"', name="Back on a trial",
         include_terminal_stages=True)

    changes = alerts_evaluate(tenant=tenant, account_ids=all_ids(tenant))

    assert [Alert.objects.for_tenant(tenant).get(pk=pk).account_id for pk in changes.opened] == [churned.pk]


def test_a_cleared_condition_may_not_reopen_within_the_cooldown(tenant):
    account = AccountFactory(tenant=tenant, plan="trial")
    rule(tenant, 'account.plan == "trial"', cooldown_minutes=60)
    now = timezone.now()
    (alert_id,) = alerts_evaluate(tenant=tenant, account_ids=[account.pk], now=now).opened
    Account.objects.for_tenant(tenant).filter(pk=account.pk).update(plan="pro")
    assert alerts_evaluate(tenant=tenant, account_ids=[account.pk], now=now).resolved == [alert_id]
    Account.objects.for_tenant(tenant).filter(pk=account.pk).update(plan="trial")

    within = alerts_evaluate(tenant=tenant, account_ids=[account.pk], now=now + dt.timedelta(minutes=30))
    after = alerts_evaluate(tenant=tenant, account_ids=[account.pk], now=now + dt.timedelta(minutes=61))

    assert within.opened == []
    assert len(after.opened) == 1 and after.opened != [alert_id]


def test_rules_evaluated_together_keep_their_own_cooldowns(tenant):
    account = AccountFactory(tenant=tenant, plan="trial")
    rule(tenant, 'account.plan == "trial"', key="short", name="Short", cooldown_minutes=10)
    rule(tenant, 'account.plan == "trial"', key="long", name="Long", cooldown_minutes=60)
    now = timezone.now()
    opened = alerts_evaluate(tenant=tenant, account_ids=[account.pk], now=now).opened
    Account.objects.for_tenant(tenant).filter(pk=account.pk).update(plan="pro")
    assert sorted(alerts_evaluate(tenant=tenant, account_ids=[account.pk], now=now).resolved) == sorted(opened)
    Account.objects.for_tenant(tenant).filter(pk=account.pk).update(plan="trial")

    reopened = alerts_evaluate(tenant=tenant, account_ids=[account.pk], now=now + dt.timedelta(minutes=30)).opened

    assert [alert.rule.key for alert in Alert.objects.for_tenant(tenant).filter(pk__in=reopened)] == ["short"]


def test_ten_rules_are_evaluated_in_as_many_queries_as_one(tenant, django_assert_num_queries):
    AccountFactory.create_batch(5, tenant=tenant, plan="trial", mrr=50)
    ids = all_ids(tenant)
    rule(tenant, 'account.plan == "trial"', key="rule_0")
    alerts_evaluate(tenant=tenant, account_ids=ids)
    with CaptureQueriesContext(connection) as one_rule:
        alerts_evaluate(tenant=tenant, account_ids=ids)
    for number in range(1, 10):
        rule(tenant, f"account.mrr >= {number * 10}", key=f"rule_{number}")
    alerts_evaluate(tenant=tenant, account_ids=ids)

    with django_assert_num_queries(len(one_rule.captured_queries)):
        changes = alerts_evaluate(tenant=tenant, account_ids=ids)

    assert changes.opened == [] and Alert.objects.for_tenant(tenant).count() == 5 * 6


def test_ten_segments_are_refreshed_in_as_many_queries_as_two(tenant, django_assert_num_queries):
    for plan in ("trial", "pro"):
        ContactFactory.create_batch(2, account=AccountFactory(tenant=tenant, plan=plan, mrr=50), role="administrator")
    ids = all_ids(tenant)

    def segment(key, criteria, subject=Subject.ACCOUNT):
        segment_create(tenant=tenant, actor=None, key=key, name=key, criteria_text=criteria, subject=subject)

    segment("trial", 'account.plan == "trial"')
    segment("admins", 'contact.role == "administrator"', Subject.CONTACT)
    segments_refresh(tenant=tenant, account_ids=ids)
    with CaptureQueriesContext(connection) as two_segments:
        segments_refresh(tenant=tenant, account_ids=ids)
    for number in range(1, 8):
        segment(f"mrr_{number}", f"account.mrr >= {number * 10}")
    segment("trial_admins", 'contact.role == "administrator" and account.plan == "trial"', Subject.CONTACT)
    entered = segments_refresh(tenant=tenant, account_ids=ids)

    with django_assert_num_queries(len(two_segments.captured_queries)):
        assert segments_refresh(tenant=tenant, account_ids=ids) == []
    members = SegmentMembership.objects.for_tenant(tenant).current().values_list("segment__key", flat=True)
    assert Counter(members) == {
        "trial": 1, "admins": 4, "mrr_1": 2, "mrr_2": 2, "mrr_3": 2, "mrr_4": 2, "mrr_5": 2, "trial_admins": 2
    }
    assert len(entered) == 2 * 5 + 2 and all(change.entered for change in entered)


def test_an_alert_is_acknowledged_then_resolved_by_hand_with_a_note(tenant, bob):
    account = AccountFactory(tenant=tenant, plan="trial")
    rule(tenant, 'account.plan == "trial"')
    alert = Alert.objects.for_tenant(tenant).get(pk=alerts_evaluate(tenant=tenant, account_ids=[account.pk]).opened[0])

    alert_acknowledge(tenant=tenant, alert=alert, user=bob)
    alert = alert_resolve(tenant=tenant, alert=alert, user=bob, note="Called them; trial extended.")

    assert (alert.status, alert.resolution, alert.note) == (AlertStatus.RESOLVED, Resolution.MANUAL, "Called them; trial extended.")
    assert alert.acknowledged_by == bob and alert.resolved_by == bob
    assert alert.acknowledged_at <= alert.resolved_at
    with pytest.raises(Exception, match="already resolved"):
        alert_resolve(tenant=tenant, alert=alert, user=bob)
    # The condition still holds, so the next evaluation opens a new alert.
    assert len(alerts_evaluate(tenant=tenant, account_ids=[account.pk]).opened) == 1


def test_alert_raise_is_idempotent_on_its_dedupe_key(tenant, bob):
    account = AccountFactory(tenant=tenant, owner=bob)

    first = alert_raise(tenant=tenant, account=account, title="Usage check failed", severity="warning", dedupe_key="step:1")
    again = alert_raise(tenant=tenant, account=account, title="Usage check failed", severity="warning", dedupe_key="step:1")

    assert first.pk == again.pk and first.rule is None
    inbox = Notification.objects.for_tenant(tenant).filter(user=bob, channel="in_app")
    assert [(n.alert_id, n.status) for n in inbox] == [(first.pk, DeliveryStatus.DELIVERED)]


def test_alert_emails_reach_the_owner_and_listed_addresses_through_smtp_once(tenant, bob, smtp_server):
    account = AccountFactory(tenant=tenant, owner=bob, plan="trial")
    rule(tenant, 'account.plan == "trial"', name="Trial account", channels=["email", "in_app"],
         notify_emails=["cs-lead@alpha.example"], severity="critical")
    alerts_evaluate(tenant=tenant, account_ids=[account.pk])
    alerts_evaluate(tenant=tenant, account_ids=[account.pk])

    notifications_send_due()
    notifications_send_due()

    recipients = sorted(str(message["To"]) for message in smtp_server.messages)
    assert recipients == ["bob@alpha.example", "cs-lead@alpha.example"]
    assert all(str(m["Subject"]) == f"[Critical] Trial account: {account.name}" for m in smtp_server.messages)
    assert set(Notification.objects.for_tenant(tenant).values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}


def test_a_failed_email_is_retried_by_the_sweep(tenant, bob, settings, smtp_server):
    account = AccountFactory(tenant=tenant, owner=bob, plan="trial")
    rule(tenant, 'account.plan == "trial"', channels=["email"])
    real_port = settings.EMAIL_PORT
    settings.EMAIL_PORT = 1  # nothing listens there
    alerts_evaluate(tenant=tenant, account_ids=[account.pk])
    now = timezone.now()
    notifications_send_due(now=now)
    failed = Notification.objects.for_tenant(tenant).get(channel="email")
    assert failed.status == DeliveryStatus.PENDING and failed.last_error and failed.next_attempt_at > now

    settings.EMAIL_PORT = real_port
    notifications_send_due(now=failed.next_attempt_at)

    assert [str(m["To"]) for m in smtp_server.messages] == ["bob@alpha.example"]


def test_alerts_post_to_a_slack_compatible_incoming_webhook(tenant, receiver):
    account = AccountFactory(tenant=tenant, plan="trial")
    rule(tenant, 'account.plan == "trial"', name="Trial account", channels=["slack"], slack_webhook_url=receiver.url)
    alerts_evaluate(tenant=tenant, account_ids=[account.pk])

    notifications_send_due()

    (request,) = receiver.requests
    assert request["headers"]["Content-Type"] == "application/json"
    assert f"Trial account: {account.name}" in json.loads(request["body"])["text"]
