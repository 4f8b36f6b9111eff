"""The daily digest: one email per member as their working day starts, through the notification outbox."""

import datetime as dt
import zoneinfo

import pytest
import time_machine

from alerts.models import Alert, AlertStatus, Notification
from alerts.notifications import member_notifications, note_tell, notifications_mark_read, notifications_send_due
from csplatform.customers.services import note_add
from csplatform.digests import digest_build, digests_send_due
from csplatform.tenancy.models import AuditLogEntry, Membership, Role
from playbooks.models import Task

from ..factories import AccountFactory, MembershipFactory, UserFactory
from .conftest import move

pytestmark = pytest.mark.django_db

UTC = dt.timezone.utc
# A Monday; the tenant's zone is UTC and members start at 09:00 unless a test says otherwise.
MONDAY = dt.date(2027, 1, 4)


def at(day, hour, minute=0, zone=UTC):
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)


def open_alert(account, title, *, hours_ago=2, status=AlertStatus.OPEN, severity="critical"):
    return Alert.objects.create(
        tenant=account.tenant, account=account, title=title, severity=severity, status=status,
        opened_at=at(MONDAY, 9) - dt.timedelta(hours=hours_ago),
    )


def task(account, owner, title, due_at, *, done=False):
    return Task.objects.create(
        tenant=account.tenant, account=account, owner=owner, title=title, due_at=due_at,
        completed_at=due_at if done else None,
    )


def digests(tenant):
    return Notification.objects.for_tenant(tenant).filter(idempotency_key__startswith="digest:")


def test_a_csm_gets_one_digest_email_as_their_working_day_starts(tenant, bob, smtp_server, settings):
    settings.CSP_PUBLIC_URL = "https://cs.alpha.example"
    account = AccountFactory(tenant=tenant, owner=bob, name="Granite Labs", renewal_date=MONDAY + dt.timedelta(days=10),
                             mrr=2500)
    open_alert(account, "Card expires in renewal")
    task(account, bob, "Call the champion", at(MONDAY, 15))
    task(account, bob, "Send the QBR deck", at(MONDAY - dt.timedelta(days=2), 12))
    task(account, bob, "Low usage after onboarding demo: Granite Labs", at(MONDAY, 16))

    assert digests_send_due(now=at(MONDAY, 9, 10)) == 1
    assert digests_send_due(now=at(MONDAY, 9, 40)) == 0
    notifications_send_due()

    [message] = smtp_server.messages
    assert str(message["To"]) == "bob@alpha.example"
    assert str(message["Subject"]) == "Alpha Software: 1 open alert, 3 tasks due, 1 renewal"
    body = message.get_content().replace("\r\n", "\n")
    assert "Hello Bob CSM, here is your day at Alpha Software, Monday, January 4." in body
    assert (
        f"Open alerts on your accounts (1)\n- [Critical] Card expires in renewal, opened Jan 4: "
        f"https://cs.alpha.example/t/alpha/accounts/{account.pk}/"
    ) in body
    assert (
        "Your tasks due by today (3)\n- Overdue since Jan 2 12:00: Send the QBR deck (Granite Labs)\n"
        "- Due Jan 4 15:00: Call the champion (Granite Labs)\n"
        "- Due Jan 4 16:00: Low usage after onboarding demo: Granite Labs\n"
    ) in body
    assert (
        "Your accounts renewing within 30 days (1)\n- Granite Labs renews on Jan 14 (2,500 USD MRR): "
        f"https://cs.alpha.example/t/alpha/accounts/{account.pk}/"
    ) in body
    membership = Membership.objects.for_tenant(tenant).get(user=bob)
    assert f"https://cs.alpha.example/t/alpha/settings/members/{membership.pk}/hours/" in body


@pytest.mark.parametrize(
    "now",
    [at(MONDAY, 8, 59), at(MONDAY, 10, 0), at(MONDAY + dt.timedelta(days=5), 9, 10)],
    ids=["before the day starts", "after its first hour", "on a Saturday"],
)
def test_no_digest_is_written_outside_the_first_hour_of_a_working_day(tenant, bob, now):
    open_alert(AccountFactory(tenant=tenant, owner=bob), "Health dropped")

    assert digests_send_due(now=now) == 0
    assert not digests(tenant).exists()


def test_the_digest_follows_the_members_own_zone_and_hours(tenant, bob):
    Membership.objects.for_tenant(tenant).filter(user=bob).update(timezone="Asia/Tokyo", work_start_hour=8)
    open_alert(AccountFactory(tenant=tenant, owner=bob), "Health dropped")
    tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")

    assert digests_send_due(now=at(MONDAY, 9, 10)) == 0
    assert digests_send_due(now=at(MONDAY, 8, 15, zone=tokyo)) == 1
    assert digests(tenant).get().idempotency_key.endswith(":2027-01-04")


def test_a_member_with_nothing_to_act_on_gets_no_email(tenant, bob):
    account = AccountFactory(tenant=tenant, owner=bob, renewal_date=MONDAY + dt.timedelta(days=45))
    open_alert(account, "Acknowledged already", status=AlertStatus.ACKNOWLEDGED)
    open_alert(account, "Resolved already", status=AlertStatus.RESOLVED)
    task(account, bob, "Done already", at(MONDAY, 8), done=True)
    task(account, bob, "Due tomorrow", at(MONDAY + dt.timedelta(days=1), 10))

    assert digests_send_due(now=at(MONDAY, 9, 10)) == 0


def test_viewers_members_who_turned_it_off_and_deactivated_users_get_none(tenant, alice, bob):
    viewer = UserFactory(email="viv@alpha.example")
    MembershipFactory(tenant=tenant, user=viewer, role=Role.VIEWER)
    gone = UserFactory(email="gone@alpha.example", is_active=False)
    MembershipFactory(tenant=tenant, user=gone)
    Membership.objects.for_tenant(tenant).filter(user=alice).update(daily_digest=False)
    for user in (alice, bob, viewer, gone):
        open_alert(AccountFactory(tenant=tenant, owner=user), f"Alert of {user.email}")

    assert digests_send_due(now=at(MONDAY, 9, 10)) == 1
    assert list(digests(tenant).values_list("recipient", flat=True)) == ["bob@alpha.example"]


def test_a_digest_holds_only_the_members_own_accounts_in_its_own_tenant(tenant, other_tenant, alice, bob):
    MembershipFactory(tenant=other_tenant, user=bob)
    open_alert(AccountFactory(tenant=tenant, owner=bob, name="Bob's Alpha Account"), "Alpha alert")
    open_alert(AccountFactory(tenant=tenant, owner=alice, name="Alice's Account"), "Alice's alert")
    open_alert(AccountFactory(tenant=other_tenant, owner=bob, name="Bob's Beta Account"), "Beta alert")

    digests_send_due(now=at(MONDAY, 9, 10))

    bobs = digests(tenant).get(user=bob).text
    assert "Alpha alert" in bobs and "Alice's alert" not in bobs and "Beta alert" not in bobs
    theirs = digests(other_tenant).get(user=bob).text
    assert "Beta alert" in theirs and "Alpha alert" not in theirs and "/t/beta/accounts/" in theirs


def test_a_long_list_names_ten_and_links_to_the_rest(tenant, bob, settings):
    settings.CSP_PUBLIC_URL = "https://cs.alpha.example"
    for number in range(12):
        AccountFactory(tenant=tenant, owner=bob, name=f"Renewing {number:02d}",
                       renewal_date=MONDAY + dt.timedelta(days=number))

    digests_send_due(now=at(MONDAY, 9, 10))

    text = digests(tenant).get().text
    assert "Your accounts renewing within 30 days (12)" in text
    assert "Renewing 09 renews on Jan 13" in text and "Renewing 10" not in text
    assert "  and 2 more: https://cs.alpha.example/t/alpha/?scope=mine&renewal=30&sort=renewal" in text


def test_a_long_list_of_alerts_names_the_most_severe_first_and_links_to_the_inbox_in_that_order(tenant, bob, settings):
    settings.CSP_PUBLIC_URL = "https://cs.alpha.example"
    account = AccountFactory(tenant=tenant, owner=bob)
    for hours_ago in range(1, 11):
        open_alert(account, f"Logins fell {hours_ago}h ago", hours_ago=hours_ago, severity="warning")
    open_alert(account, "Card expires in renewal", hours_ago=30)

    text = digest_build(tenant=tenant, membership=Membership.objects.for_tenant(tenant).get(user=bob), day=MONDAY).text

    rows = [line for line in text.splitlines() if line.startswith("- [")]
    assert rows[0].startswith("- [Critical] Card expires in renewal, opened Jan 3")
    assert rows[1].startswith("- [Warning] Logins fell 1h ago") and len(rows) == 10
    assert "  and 1 more: https://cs.alpha.example/t/alpha/alerts/?owner=mine&sort=-severity" in text


def test_a_customer_who_left_is_not_among_the_renewals(lifecycle_tenant, alice, bob):
    staying, gone = (AccountFactory(tenant=lifecycle_tenant, owner=bob, name=name,
                                    renewal_date=MONDAY + dt.timedelta(days=5)) for name in ("Staying", "Gone"))
    move(lifecycle_tenant, gone, "churned", actor=alice)

    digests_send_due(now=at(MONDAY, 9, 10))

    text = digests(lifecycle_tenant).get().text
    assert "Your accounts renewing within 30 days (1)" in text and "Staying renews" in text and "Gone" not in text


def test_a_member_turns_their_digest_off_on_their_working_hours_page_and_it_is_audited(client, tenant, bob):
    membership = Membership.objects.for_tenant(tenant).get(user=bob)
    url = f"/t/alpha/settings/members/{membership.pk}/hours/"
    client.force_login(bob)
    html = client.get(url).content.decode()
    assert "Email a daily digest as the working day starts" in html
    assert f"/t/alpha/settings/members/{membership.pk}/digest/" in html

    hours = {"timezone": "", "work_start_hour": 9, "work_end_hour": 17, "work_days": [0, 1, 2, 3, 4]}
    client.post(url, hours)

    membership.refresh_from_db()
    assert membership.daily_digest is False
    entry = AuditLogEntry.objects.for_tenant(tenant).get(action="member.hours_changed")
    assert (entry.before["daily_digest"], entry.after["daily_digest"]) == (True, False)


def digest_page(tenant, user):
    return f"/t/{tenant.slug}/settings/members/{Membership.objects.for_tenant(tenant).get(user=user).pk}/digest/"


def test_a_member_reads_what_todays_digest_says_on_its_page(client, tenant, bob):
    account = AccountFactory(tenant=tenant, owner=bob, name="Granite Labs")
    open_alert(account, "Card expires in renewal")
    client.force_login(bob)

    html = client.get(digest_page(tenant, bob)).content.decode()

    assert f'<a href="{digest_page(tenant, bob)}">My daily digest</a>' in html
    assert "Sent to bob@alpha.example at 09:00 (UTC) on Mon, Tue, Wed, Thu, Fri" in html
    assert "<strong>Subject:</strong> Alpha Software: 1 open alert" in html
    assert "[Critical] Card expires in renewal" in html
    assert f'<a href="http://127.0.0.1:8000/t/alpha/accounts/{account.pk}/" rel="nofollow">' in html


def test_the_digest_page_says_when_there_is_nothing_to_send_or_the_digest_is_off(client, tenant, bob):
    client.force_login(bob)
    assert "Nothing to act on today" in client.get(digest_page(tenant, bob)).content.decode()

    Membership.objects.for_tenant(tenant).filter(user=bob).update(daily_digest=False)
    assert "The daily digest is off." in client.get(digest_page(tenant, bob)).content.decode()


def test_on_a_day_off_the_digest_page_says_none_goes_out_today(client, tenant, bob):
    today = dt.datetime.now(UTC).date()
    Membership.objects.for_tenant(tenant).filter(user=bob).update(work_days=[(today.weekday() + 1) % 7])
    open_alert(AccountFactory(tenant=tenant, owner=bob), "Health dropped")
    client.force_login(bob)

    html = client.get(digest_page(tenant, bob)).content.decode()

    assert f"{today:%A} is not a working day, so none goes out today" in html


def test_a_viewer_is_told_viewers_get_no_digest_and_has_no_menu_link_to_one(client, tenant):
    viewer = UserFactory(email="viv@alpha.example")
    MembershipFactory(tenant=tenant, user=viewer, role=Role.VIEWER)
    client.force_login(viewer)

    html = client.get(digest_page(tenant, viewer)).content.decode()

    assert "Viewers get no daily digest" in html and "My daily digest" not in html


def test_a_digest_page_is_its_members_and_the_admins_only(client, tenant, other_tenant, alice, bob, charlie):
    client.force_login(bob)
    assert client.get(digest_page(tenant, alice)).status_code == 403
    assert client.get(digest_page(other_tenant, charlie)).status_code == 404
    outsider = Membership.objects.for_tenant(other_tenant).get(user=charlie)
    assert client.get(f"/t/alpha/settings/members/{outsider.pk}/digest/").status_code == 404

    client.force_login(alice)
    assert client.get(digest_page(tenant, bob)).status_code == 200


def test_a_digest_names_what_teammates_wrote_for_the_member_that_they_have_not_read(tenant, alice, bob, settings):
    settings.CSP_PUBLIC_URL = "https://cs.alpha.example"
    account = AccountFactory(tenant=tenant, owner=bob, name="Granite Labs")
    unread = note_add(tenant=tenant, account=account, author=alice, body="Can you call them before Friday?")
    read = note_add(tenant=tenant, account=account, author=alice, body="Nice work on the QBR")
    note_tell(tenant=tenant, note=unread, users=[bob])
    note_tell(tenant=tenant, note=read, users=[bob])
    read_ids = member_notifications(tenant, bob).filter(idempotency_key__startswith=f"note:{read.pk}:")
    notifications_mark_read(tenant=tenant, user=bob, notification_ids=read_ids.values_list("pk", flat=True))
    Notification.objects.create(
        tenant=tenant, user=bob, account=account, alert=open_alert(account, "Health dropped"), channel="in_app",
        recipient=bob.email, subject="Health dropped", text="", idempotency_key="alert-in-app",
    )
    membership = Membership.objects.for_tenant(tenant).get(user=bob)

    digest = digest_build(tenant=tenant, membership=membership, day=MONDAY)

    notification = member_notifications(tenant, bob).get(idempotency_key=f"note:{unread.pk}:user:{bob.pk}")
    assert digest.subject == "Alpha Software: 1 open alert, 1 unread from teammates"
    assert (
        'Unread from your teammates (1)\n- Alice Admin wrote on Granite Labs: "Can you call them before Friday?": '
        f"https://cs.alpha.example/t/alpha/notifications/{notification.pk}/"
    ) in digest.text
    assert "Nice work" not in digest.text


def test_a_snoozed_alert_stays_out_of_the_digest_until_its_time_comes(tenant, bob):
    account = AccountFactory(tenant=tenant, owner=bob)
    alert = open_alert(account, "Health dropped")
    Alert.objects.for_tenant(tenant).filter(pk=alert.pk).update(snoozed_until=at(MONDAY, 12))
    membership = Membership.objects.for_tenant(tenant).get(user=bob)

    with time_machine.travel(at(MONDAY, 9, 10), tick=False):
        assert digest_build(tenant=tenant, membership=membership, day=MONDAY) is None
    with time_machine.travel(at(MONDAY, 12, 1), tick=False):
        assert "Health dropped" in digest_build(tenant=tenant, membership=membership, day=MONDAY).text
