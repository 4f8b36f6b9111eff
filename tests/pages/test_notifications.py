"""The member's in-app notifications: what alert rules told them, with an unread count in the header."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.models import Channel, Notification
from alerts.services import alert_raise, alert_rule_create, alerts_evaluate
from csplatform.tenancy.models import Role
from playbooks.models import Task

from ..factories import AccountFactory, MembershipFactory

pytestmark = pytest.mark.django_db

URL = "/t/alpha/notifications/"


def notify_owners_of_trials(tenant):
    alert_rule_create(
        tenant=tenant, actor=None, key="trial", name="Trial account", condition_text='account.plan == "trial"',
        channels=["in_app"], notify_owner=True,
    )


def header_count(client):
    html = client.get("/t/alpha/").content.decode()
    start = html.index('class="header-notifications"')
    return html[start : html.index("</a>", start)]


def test_a_rule_that_notifies_in_the_app_lists_its_alert_for_the_owner_as_new_with_a_count(client, tenant, bob):
    trial = AccountFactory(tenant=tenant, owner=bob, plan="trial", name="Acme Rockets")
    notify_owners_of_trials(tenant)
    alerts_evaluate(tenant=tenant, account_ids=[trial.pk])
    client.force_login(bob)

    html = client.get(URL).content.decode()

    assert "Trial account: Acme Rockets" in html and '<span class="tag">New</span>' in html
    assert "the alert is open" in html and "Mark all as read" in html
    assert '<span class="nav-count">1<span class="visually-hidden"> unread</span>' in header_count(client)


def test_a_notification_of_this_minute_reads_just_now_and_an_older_one_how_long_ago(client, tenant, bob):
    trial = AccountFactory(tenant=tenant, owner=bob, plan="trial")
    alert_raise(tenant=tenant, account=trial, title="Usage check failed", severity="warning")
    alert_raise(tenant=tenant, account=trial, title="Card expires", severity="warning")
    Notification.objects.for_tenant(tenant).filter(alert__title="Card expires").update(
        created_at=timezone.now() - dt.timedelta(hours=3)
    )
    client.force_login(bob)

    html = client.get(URL).content.decode()

    assert ">just now</time>" in html and ">3\xa0hours ago</time>" in html
    assert "0\xa0minutes" not in html


def test_following_a_notification_reads_it_and_opens_the_alerts_account(client, tenant, bob):
    trial = AccountFactory(tenant=tenant, owner=bob, plan="trial")
    alert = alert_raise(tenant=tenant, account=trial, title="Usage check failed", severity="warning")
    notification = Notification.objects.for_tenant(tenant).get(alert=alert, user=bob)
    client.force_login(bob)

    response = client.get(f"{URL}{notification.pk}/")

    assert response.status_code == 302 and response["Location"] == f"/t/alpha/accounts/{trial.pk}/"
    assert Notification.objects.for_tenant(tenant).get(pk=notification.pk).read_at is not None
    assert '<span class="tag">New</span>' not in client.get(URL).content.decode()
    assert "nav-count" not in header_count(client)


def test_mark_all_as_read_reads_only_the_members_own_notifications(client, tenant, alice, bob):
    for owner in (alice, bob, bob):
        alert_raise(tenant=tenant, account=AccountFactory(tenant=tenant, owner=owner), title="Check", severity="info")
    client.force_login(bob)

    response = client.post(f"{URL}read/", {"next": URL}, follow=True)

    assert "Marked 2 notifications read." in response.content.decode()
    unread = Notification.objects.for_tenant(tenant).filter(read_at__isnull=True)
    assert list(unread.values_list("user", flat=True)) == [alice.pk]


def test_another_members_notification_is_not_found_and_stays_unread(client, tenant, alice, bob):
    account = AccountFactory(tenant=tenant, owner=alice)
    alices = Notification.objects.for_tenant(tenant).get(
        alert=alert_raise(tenant=tenant, account=account, title="For Alice", severity="info")
    )
    client.force_login(bob)

    assert client.get(f"{URL}{alices.pk}/").status_code == 404
    assert "For Alice" not in client.get(URL).content.decode()
    assert Notification.objects.for_tenant(tenant).get(pk=alices.pk).read_at is None


def test_a_members_notifications_in_another_tenant_stay_in_that_tenant(client, tenant, other_tenant, bob):
    MembershipFactory(tenant=other_tenant, user=bob, role=Role.CSM)
    account = AccountFactory(tenant=other_tenant, owner=bob)
    elsewhere = Notification.objects.for_tenant(other_tenant).get(
        alert=alert_raise(tenant=other_tenant, account=account, title="In Beta", severity="info")
    )
    client.force_login(bob)

    assert "In Beta" not in client.get(URL).content.decode()
    assert client.get(f"{URL}{elsewhere.pk}/").status_code == 404
    assert "In Beta" in client.get("/t/beta/notifications/").content.decode()


def test_with_nothing_to_read_the_page_says_where_notifications_come_from(client, bob):
    client.force_login(bob)

    html = client.get(URL).content.decode()

    assert "No notifications yet." in html and "Mark all as read" not in html


def test_the_notifications_page_costs_the_same_queries_for_one_and_sixty_notifications(client, tenant, bob):
    account = AccountFactory(tenant=tenant, owner=bob)
    alert_raise(tenant=tenant, account=account, title="First", severity="info", dedupe_key="0")
    client.force_login(bob)
    client.get(URL)
    with CaptureQueriesContext(connection) as few:
        client.get(URL)
    for number in range(1, 60):
        alert_raise(tenant=tenant, account=account, title=f"Alert {number}", severity="info", dedupe_key=str(number))
    with CaptureQueriesContext(connection) as many:
        html = client.get(URL).content.decode()

    assert len(few.captured_queries) == len(many.captured_queries)
    assert "Page 1 of 2" in html


def test_a_task_a_teammate_gives_a_member_is_in_their_notifications_and_opens_its_account(client, tenant, alice, bob):
    account = AccountFactory(tenant=tenant, name="Acme Rockets", owner=alice)
    client.force_login(alice)
    client.post(
        f"/t/alpha/accounts/{account.pk}/tasks/",
        {"title": "Prepare the QBR deck", "owner": bob.pk, "token": "00000000-0000-4000-8000-000000000002"},
    )
    client.post(
        f"/t/alpha/accounts/{account.pk}/tasks/",
        {"title": "My own follow-up", "owner": alice.pk, "token": "00000000-0000-4000-8000-000000000003"},
    )
    client.force_login(bob)

    html = client.get(URL).content.decode()
    (notification,) = Notification.objects.for_tenant(tenant).filter(user=bob, channel=Channel.IN_APP)

    assert "Alice Admin gave you a task for Acme Rockets: Prepare the QBR deck" in html
    assert not Notification.objects.for_tenant(tenant).filter(user=alice).exists()
    assert client.get(f"{URL}{notification.pk}/")["Location"] == f"/t/alpha/accounts/{account.pk}/"


def test_a_task_handed_on_tells_its_new_owner_each_time_and_not_who_took_it_themselves(client, tenant, alice, bob):
    account = AccountFactory(tenant=tenant, name="Acme Rockets", owner=alice)
    task = Task.objects.create(tenant=tenant, account=account, owner=alice, title="Renewal call")
    change = f"/t/alpha/tasks/{task.pk}/change/"
    client.force_login(alice)
    client.post(change, {"owner": bob.pk})
    client.force_login(bob)
    client.post(change, {"owner": alice.pk})
    client.post(change, {"owner": bob.pk})

    told = (
        Notification.objects.for_tenant(tenant).filter(channel=Channel.IN_APP).order_by("pk")
        .values_list("user__email", "subject")
    )

    assert list(told) == [
        ("bob@alpha.example", "Alice Admin gave you a task for Acme Rockets: Renewal call"),
        ("alice@alpha.example", "Bob CSM gave you a task for Acme Rockets: Renewal call"),
    ]
