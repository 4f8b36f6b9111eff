"""The alerts inbox and my tasks in a real browser: chromium driven by playwright against the live test server.

Each test saves a screenshot under var/screenshots/ for a person to look at.
"""

import datetime as dt

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertStatus
from csplatform.tenancy.timezones import tenant_zone
from playbooks.models import Task

from ..factories import AccountFactory
from .conftest import SCREENSHOTS

pytestmark = pytest.mark.e2e



@pytest.fixture
def work(transactional_db, tenant, bob):
    """Bob's accounts with open alerts and tasks due before, on and after today."""
    juniper = AccountFactory(tenant=tenant, name="Juniper Health", owner=bob)
    cobalt = AccountFactory(tenant=tenant, name="Cobalt Travel", owner=bob)
    now = timezone.now()
    alerts = {
        title: Alert.objects.create(
            tenant=tenant, account=account, title=title, severity=severity, opened_at=now - dt.timedelta(hours=hours)
        )
        for title, account, severity, hours in (
            ("Logins fell by half", juniper, "critical", 3),
            ("Card expires in 14 days", cobalt, "warning", 30),
        )
    }
    tasks = {
        title: Task.objects.create(
            tenant=tenant, account=account, owner=bob, title=title, due_at=now + dt.timedelta(days=days)
        )
        for title, account, days in (
            ("Call the Juniper champion", juniper, -2),
            ("Renewal prep with Cobalt", cobalt, 6),
        )
    }
    return {"alerts": alerts, "tasks": tasks}


@pytest.fixture
def page(sign_in, bob, work):
    """A browser page signed in as bob (a CSM); the test body may still read the database between steps."""
    return sign_in(bob)


def test_acknowledge_an_alert_in_place(page, work, bob):
    alert = work["alerts"]["Logins fell by half"]
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Alerts").click()
    page.wait_for_url("**/t/alpha/alerts/")
    url = page.url
    page.screenshot(path=str(SCREENSHOTS / "alerts.png"), full_page=True)
    row = page.locator(f"#alert-{alert.pk}")
    row.get_by_role("button", name="Acknowledge").click()
    page.locator(f"#alert-{alert.pk}").get_by_role("status").filter(has_text="Acknowledged.").wait_for()
    assert page.url == url  # htmx swapped the row; no page load
    assert "Acknowledged by Bob CSM" in page.locator(f"#alert-{alert.pk}").inner_text()
    alert.refresh_from_db()
    assert alert.status == AlertStatus.ACKNOWLEDGED and alert.acknowledged_by == bob
    page.screenshot(path=str(SCREENSHOTS / "alerts-acknowledged.png"), full_page=True)


def test_select_every_alert_on_the_page_and_resolve_them_with_one_note(page, work):
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Alerts").click()
    page.wait_for_url("**/t/alpha/alerts/")
    page.get_by_role("checkbox", name="Select every alert on this page").check()
    page.get_by_label("Note for the selected alerts").fill("Both handled on the QBR call")
    page.get_by_role("button", name="Resolve selected").click()
    page.get_by_role("status").filter(has_text="Resolved 2 alerts.").wait_for()
    assert "No open alerts on your accounts." in page.inner_text("main")
    page.screenshot(path=str(SCREENSHOTS / "alerts-bulk-resolved.png"), full_page=True)
    for alert in work["alerts"].values():
        alert.refresh_from_db()
        assert (alert.status, alert.note) == (AlertStatus.RESOLVED, "Both handled on the QBR call")


def test_complete_a_task_in_place(page, work, bob):
    task = work["tasks"]["Call the Juniper champion"]
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My tasks").click()
    page.wait_for_url("**/t/alpha/tasks/")
    url = page.url
    assert "Call the Juniper champion" in page.locator("section[aria-labelledby=tasks-overdue]").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "tasks.png"), full_page=True)
    page.locator(f"#task-{task.pk}").get_by_role("button", name="Complete").click()
    page.locator(f"#task-{task.pk}").get_by_role("status").filter(has_text="Done by Bob CSM").wait_for()
    assert page.url == url
    task.refresh_from_db()
    assert task.completed_at is not None and task.completed_by == bob
    page.screenshot(path=str(SCREENSHOTS / "tasks-completed.png"), full_page=True)


def test_move_a_task_to_another_day_in_place(page, work, tenant):
    task = work["tasks"]["Call the Juniper champion"]
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My tasks").click()
    page.wait_for_url("**/t/alpha/tasks/")
    row = page.locator(f"#task-{task.pk}")
    row.locator("summary").filter(has_text="Change").click()
    day = timezone.localdate(timezone.now() + dt.timedelta(days=10))
    row.get_by_label("Due on").fill(day.isoformat())
    row.get_by_role("button", name="Save").click()
    page.locator(f"#task-{task.pk}").get_by_role("status").filter(has_text="Saved.").wait_for()
    task.refresh_from_db()
    assert task.due_at.astimezone(tenant_zone(tenant)).date() == day
    page.screenshot(path=str(SCREENSHOTS / "tasks-changed.png"), full_page=True)


def test_account_page_lists_alerts_and_tasks_and_acknowledges_in_place(page, work, live_server):
    alert = work["alerts"]["Logins fell by half"]
    page.goto(f"{live_server.url}/t/alpha/accounts/{alert.account_id}/")
    assert "Call the Juniper champion" in page.locator("section[aria-labelledby=tasks-heading]").inner_text()
    url = page.url
    page.locator(f"#alert-{alert.pk}").get_by_role("button", name="Acknowledge").click()
    page.locator(f"#alert-{alert.pk}").get_by_role("status").filter(has_text="Acknowledged.").wait_for()
    assert page.url == url
    alert.refresh_from_db()
    assert alert.status == AlertStatus.ACKNOWLEDGED
    page.screenshot(path=str(SCREENSHOTS / "account-work.png"), full_page=True)
