"""Seed 001's three examples, on generated data: two segments and an alert rule.

"Call all your administrators contacts in the onboarding phase just before
the end of their free trial", "send a tutorial to all users in the Adopting
phase who haven't used a specific feature yet", and "an alert when a
customer's credit card expires while in the renewal stage".
"""

import datetime as dt

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertStatus, Resolution, SegmentMembership
from alerts.services import alert_rule_create, alerts_evaluate, segment_create, segments_refresh
from csplatform.customers.models import Account, ContactRole
from csplatform.rules.metrics import metrics_compute
from csplatform.rules.services import metric_definition_create
from lifecycle.services import lifecycle_advance
from tests.factories import AccountFactory, ContactFactory

from .conftest import move, send_events

pytestmark = pytest.mark.django_db


def all_ids(tenant):
    return list(Account.objects.for_tenant(tenant).values_list("pk", flat=True))


def test_administrators_of_onboarding_accounts_whose_trial_ends_within_3_days_are_the_call_list(lifecycle_tenant, alice):
    tenant = lifecycle_tenant
    now = timezone.now()
    ending = AccountFactory(tenant=tenant, trial_ends_at=now + dt.timedelta(days=2))
    later = AccountFactory(tenant=tenant, trial_ends_at=now + dt.timedelta(days=10))
    moved_on = AccountFactory(tenant=tenant, trial_ends_at=now + dt.timedelta(days=2))
    admin = ContactFactory(account=ending, role=ContactRole.ADMINISTRATOR)
    ContactFactory(account=ending, role=ContactRole.USER)
    ContactFactory(account=later, role=ContactRole.ADMINISTRATOR)
    ContactFactory(account=moved_on, role=ContactRole.ADMINISTRATOR)
    lifecycle_advance(tenant=tenant, account_ids=all_ids(tenant))
    move(tenant, moved_on, "adopting")
    segment = segment_create(
        tenant=tenant,
        actor=alice,
        key="trial_ending_admins",
        name="Administrators to call before the trial ends",
        subject="contact",
        criteria_text='stage == "onboarding" and account.trial_ends_at within 3 days and contact.role == "administrator"',
    )

    changes = segments_refresh(tenant=tenant, account_ids=all_ids(tenant))

    assert [(c.segment_id, c.account_id, c.contact_id, c.entered) for c in changes] == [
        (segment.pk, ending.pk, admin.pk, True)
    ]
    members = SegmentMembership.objects.for_tenant(tenant).current().filter(segment=segment)
    assert [(m.account_id, m.contact_id) for m in members] == [(ending.pk, admin.pk)]

    # The trial is extended: the administrator leaves the call list, and the stay is kept.
    Account.objects.for_tenant(tenant).filter(pk=ending.pk).update(trial_ends_at=now + dt.timedelta(days=20))
    changes = segments_refresh(tenant=tenant, account_ids=all_ids(tenant))

    assert [(c.contact_id, c.entered) for c in changes] == [(admin.pk, False)]
    stay = SegmentMembership.objects.for_tenant(tenant).get(segment=segment, contact=admin)
    assert stay.left_at is not None and stay.left_at > stay.entered_at


def test_adopting_users_who_never_created_a_report_get_the_tutorial(api, lifecycle_tenant, alice):
    tenant = lifecycle_tenant
    metric_definition_create(
        tenant=tenant,
        actor=alice,
        fields={
            "key": "reports_created",
            "label": "Reports created in 90 days",
            "subject": "contact",
            "event_names": ["report_created"],
            "window_days": 90,
            "aggregation": "count",
        },
    )
    adopting = AccountFactory(tenant=tenant)
    onboarding = AccountFactory(tenant=tenant)
    tried = ContactFactory(account=adopting, role=ContactRole.USER)
    never = ContactFactory(account=adopting, role=ContactRole.USER)
    never_but_onboarding = ContactFactory(account=onboarding, role=ContactRole.USER)
    send_events(api, adopting, tried, "report_created", days_ago=3)
    send_events(api, adopting, never, "login", days_ago=1, count=5)
    send_events(api, onboarding, never_but_onboarding, "login", days_ago=1)
    metrics_compute(tenant=tenant, account_ids=all_ids(tenant))
    lifecycle_advance(tenant=tenant, account_ids=all_ids(tenant))
    move(tenant, adopting, "adopting")
    segment = segment_create(
        tenant=tenant,
        actor=alice,
        key="reports_tutorial",
        name="Users to send the reports tutorial",
        subject="contact",
        criteria_text='stage == "adopting" and contact.role == "user" and contact.metric.reports_created == 0',
    )

    segments_refresh(tenant=tenant, account_ids=all_ids(tenant))

    members = SegmentMembership.objects.for_tenant(tenant).current().filter(segment=segment)
    assert [m.contact_id for m in members] == [never.pk]


def test_a_card_expiring_while_in_the_renewal_stage_opens_an_alert_until_the_card_is_renewed(lifecycle_tenant, alice):
    tenant = lifecycle_tenant
    today = timezone.localdate()
    expiring = AccountFactory(tenant=tenant, card_expires_at=today + dt.timedelta(days=10))
    far_off = AccountFactory(tenant=tenant, card_expires_at=today + dt.timedelta(days=90))
    not_renewing = AccountFactory(tenant=tenant, card_expires_at=today + dt.timedelta(days=10))
    lifecycle_advance(tenant=tenant, account_ids=all_ids(tenant))
    move(tenant, expiring, "renewal")
    move(tenant, far_off, "renewal")
    rule = alert_rule_create(
        tenant=tenant,
        actor=alice,
        key="card_expiring_in_renewal",
        name="Card expires during renewal",
        condition_text='stage == "renewal" and account.card_expires_at within 30 days',
        severity="critical",
    )

    changes = alerts_evaluate(tenant=tenant, account_ids=all_ids(tenant))

    alert = Alert.objects.for_tenant(tenant).get(pk__in=changes.opened)
    assert (alert.rule, alert.account, alert.severity, alert.status) == (rule, expiring, "critical", AlertStatus.OPEN)
    assert changes.resolved == []
    assert not Alert.objects.for_tenant(tenant).filter(account__in=[far_off, not_renewing]).exists()

    Account.objects.for_tenant(tenant).filter(pk=expiring.pk).update(card_expires_at=today + dt.timedelta(days=700))
    changes = alerts_evaluate(tenant=tenant, account_ids=all_ids(tenant))

    assert changes.opened == [] and changes.resolved == [alert.pk]
    alert.refresh_from_db()
    assert (alert.status, alert.resolution) == (AlertStatus.RESOLVED, Resolution.AUTO)
