"""Seed 001 end to end: for each customer entering Onboarding, a welcome email,
two days later a personalised demo, five days later a usage check."""

import datetime as dt
import zoneinfo

import pytest
import time_machine
from icalendar import Calendar

from csplatform.customers.ingest import events_ingest
from csplatform.customers.models import ContactRole
from csplatform.rules.metrics import metrics_compute
from lifecycle.services import lifecycle_advance
from playbooks.models import OutboundEmail, Run, RunStatus, Task
from playbooks.runner import steps_run_due
from playbooks.services import playbook_templates_install, playbooks_enroll
from tests.factories import AccountFactory, ContactFactory

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
MONDAY = dt.datetime(2024, 3, 4, 9, 30, tzinfo=PARIS)


def attachment_of(message, content_type):
    for part in message.iter_attachments():
        if part.get_content_type() == content_type:
            return part.get_content()
    return None


@pytest.fixture
def paris_tenant(tenant):
    tenant.timezone = "Europe/Paris"
    tenant.save()
    return tenant


@pytest.mark.django_db
def test_onboarding_playbook_walks_welcome_demo_and_usage_check_over_five_days(
    paris_tenant, stages, customer, bob, smtp_server
):
    tenant = paris_tenant
    busy = AccountFactory(tenant=tenant, name="Busy Bees", owner=bob)
    busy_admin = ContactFactory(account=busy, name="Bea Champion", email="bea@bees.example", role=ContactRole.CHAMPION)
    (playbook,) = playbook_templates_install(tenant=tenant, keys=["onboarding_welcome"])
    assert playbook.enabled

    with time_machine.travel(MONDAY, tick=False) as clock:
        # Day 0: both accounts are placed in Onboarding; the pipeline enrols them.
        moved = lifecycle_advance(tenant=tenant, account_ids=[customer.pk, busy.pk])
        assert playbooks_enroll(tenant=tenant, account_ids=[customer.pk, busy.pk], stage_changes=moved) == {
            playbook.pk: 2
        }
        assert steps_run_due() == 2
        assert smtp_server.subjects() == ["Welcome to the team, Acme Rockets", "Welcome to the team, Busy Bees"]
        welcome = next(m for m in smtp_server.messages if "Acme" in str(m["Subject"]))
        # The primary contact is the administrator, not the first contact created.
        assert str(welcome["To"]) == "ada@acme.example"
        assert "Hi Ada," in welcome.get_body(("plain",)).get_content()
        assert "<strong>Acme Rockets</strong>" in welcome.get_body(("html",)).get_content()
        assert str(welcome["Reply-To"]) == bob.email

        # Day 1: nothing is due; running again sends nothing twice.
        clock.shift(dt.timedelta(days=1))
        assert steps_run_due() == 0
        assert len(smtp_server.messages) == 2

        # Day 2, Wednesday: the demo invitations, in bob's working hours two days ahead.
        clock.shift(dt.timedelta(days=1))
        events_ingest(
            tenant=tenant,
            events=[
                {
                    "message_id": f"busy-{n}",
                    "account_id": busy.pk,
                    "contact_id": busy_admin.pk,
                    "event": "report.viewed",
                    "timestamp": dt.datetime.now(dt.UTC),
                    "properties": {},
                }
                for n in range(12)
            ],
        )
        assert steps_run_due() == 2
        invitations = [m for m in smtp_server.messages if "personalised demo" in str(m["Subject"])]
        assert len(invitations) == 2
        slots = {}
        for message in invitations:
            calendar = Calendar.from_ical(attachment_of(message, "text/calendar"))
            assert calendar["METHOD"] == "REQUEST"
            (event,) = calendar.walk("VEVENT")
            assert str(event["ORGANIZER"]) == f"mailto:{bob.email}"
            assert str(event["ATTENDEE"]) == f"mailto:{message['To']}"
            start, end = event.decoded("DTSTART"), event.decoded("DTEND")
            assert end - start == dt.timedelta(minutes=30)
            slots[str(message["To"])] = start.astimezone(PARIS)
        # Friday, the first hour of the working day, then the next free hour for bob's second demo.
        assert sorted(slots.values()) == [
            dt.datetime(2024, 3, 8, 9, 0, tzinfo=PARIS),
            dt.datetime(2024, 3, 8, 10, 0, tzinfo=PARIS),
        ]
        acme_invite = next(m for m in invitations if str(m["To"]) == "ada@acme.example")
        assert "Friday 08 March 2024" in acme_invite.get_body(("plain",)).get_content()
        demo_tasks = Task.objects.for_tenant(tenant).filter(source__startswith="demo:")
        assert {(task.account_id, task.owner, task.due_at) for task in demo_tasks} == {
            (customer.pk, bob, slots["ada@acme.example"]),
            (busy.pk, bob, slots["bea@bees.example"]),
        }

        # Day 5: the usage check. Busy Bees used the product; Acme gets a follow-up task for bob.
        clock.shift(dt.timedelta(days=3))
        metrics_compute(tenant=tenant, account_ids=[customer.pk, busy.pk])
        assert steps_run_due() == 2
        follow_ups = Task.objects.for_tenant(tenant).exclude(source__startswith="demo:")
        assert [(task.account_id, task.owner, task.title) for task in follow_ups] == [
            (customer.pk, bob, "Low usage after onboarding demo: Acme Rockets")
        ]
        assert set(Run.objects.for_tenant(tenant).values_list("status", flat=True)) == {RunStatus.COMPLETED}

        # Weeks later nothing more happens, and each email went out exactly once.
        clock.shift(dt.timedelta(days=30))
        assert steps_run_due() == 0
        assert len(smtp_server.messages) == 4
        assert set(OutboundEmail.objects.for_tenant(tenant).values_list("status", flat=True)) == {"sent"}


@pytest.mark.django_db
def test_welcome_email_waits_for_business_hours_in_the_contact_time_zone(paris_tenant, stages, customer, smtp_server):
    tenant = paris_tenant
    customer.contacts.filter(email="ada@acme.example").update(attributes={"timezone": "America/New_York"})
    playbook_templates_install(tenant=tenant, keys=["onboarding_welcome"])
    saturday_night = dt.datetime(2024, 3, 9, 23, 0, tzinfo=PARIS)
    with time_machine.travel(saturday_night, tick=False) as clock:
        moved = lifecycle_advance(tenant=tenant, account_ids=[customer.pk])
        playbooks_enroll(tenant=tenant, account_ids=[customer.pk], stage_changes=moved)
        steps_run_due()
        assert smtp_server.messages == []
        clock.move_to(dt.datetime(2024, 3, 11, 8, 59, tzinfo=zoneinfo.ZoneInfo("America/New_York")))
        steps_run_due()
        assert smtp_server.messages == []
        clock.move_to(dt.datetime(2024, 3, 11, 9, 0, tzinfo=zoneinfo.ZoneInfo("America/New_York")))
        steps_run_due()
        assert smtp_server.subjects() == ["Welcome to the team, Acme Rockets"]
