"""The schedule-demo step proposes a slot in the owner CSM's own working hours and time zone."""

import datetime as dt
import zoneinfo

import pytest
import time_machine

from csplatform.tenancy.models import Membership
from playbooks.models import OutboundEmail, Task
from playbooks.runner import steps_run_due
from playbooks.scheduling import demo_slot
from playbooks.services import playbook_create, run_start

pytestmark = pytest.mark.django_db

WEDNESDAY_NOON = dt.datetime(2024, 3, 6, 12, 0, tzinfo=dt.UTC)
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
DEMO = {"kind": "schedule_demo", "config": {"days_ahead": 2, "duration_minutes": 30}}


def run_demo(tenant, account):
    playbook = playbook_create(tenant=tenant, actor=None, key="demo", name="Demo", trigger_type="manual", steps=[DEMO])
    with time_machine.travel(WEDNESDAY_NOON, tick=False):
        run_start(tenant=tenant, playbook=playbook, account=account)
        steps_run_due()
    return Task.objects.for_tenant(tenant).get(account=account)


def test_the_demo_slot_is_in_the_owners_zone_hours_and_weekdays(tenant, bob, customer, smtp_server):
    Membership.objects.for_tenant(tenant).filter(user=bob).update(
        timezone="America/New_York", work_start_hour=13, work_end_hour=15, work_days=[1, 3]
    )

    task = run_demo(tenant, customer)

    # Two days ahead is Friday, not one of bob's days; his next is Tuesday, from 13:00 in New York.
    assert task.due_at == dt.datetime(2024, 3, 12, 13, 0, tzinfo=NEW_YORK)
    invitation = OutboundEmail.objects.for_tenant(tenant).get(account=customer)
    assert "Tuesday 12 March 2024, 13:00 (America/New_York)" in invitation.text


def test_an_owner_with_default_hours_gets_a_weekday_slot_from_nine_in_the_tenants_zone(tenant, customer, smtp_server):
    task = run_demo(tenant, customer)

    assert task.due_at == dt.datetime(2024, 3, 8, 9, 0, tzinfo=dt.UTC)


def test_a_working_day_that_ends_at_midnight_offers_its_last_hour():
    start, end = demo_slot(
        now=WEDNESDAY_NOON, zone=dt.UTC, days_ahead=0, duration_minutes=60, busy=[], hours=(23, 24)
    )

    assert (start, end) == (dt.datetime(2024, 3, 6, 23, 0, tzinfo=dt.UTC), dt.datetime(2024, 3, 7, 0, 0, tzinfo=dt.UTC))
