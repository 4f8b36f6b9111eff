"""What teammates address to a member (a note they are told of, a task given to them) reaches them by email as well
as in the app, unless they turned those emails off; sent by the notification outbox over real SMTP."""

import uuid

import pytest

from alerts.models import Channel, Notification
from alerts.notifications import notifications_send_due
from csplatform.tenancy.models import Membership
from playbooks.models import Task

from ..factories import AccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(tenant, alice):
    return AccountFactory(tenant=tenant, name="Acme Rockets", owner=alice)


def write_note(client, account, body, tell, token=None):
    return client.post(
        f"/t/alpha/accounts/{account.pk}/notes/", {"body": body, "tell": tell, "token": token or str(uuid.uuid4())}
    )


def channels_of(tenant, user):
    return sorted(Notification.objects.for_tenant(tenant).filter(user=user).values_list("channel", flat=True))


def test_a_note_a_teammate_tells_a_member_of_arrives_by_email_with_the_accounts_page(
    client, tenant, alice, bob, account, smtp_server
):
    client.force_login(bob)
    write_note(client, account, "Dana asked for a call\nabout SSO before the renewal.", tell=[alice.pk])

    notifications_send_due()

    (message,) = smtp_server.messages
    assert message["To"] == "alice@alpha.example"
    assert message["Subject"] == 'Bob CSM wrote on Acme Rockets: "Dana asked for a call about SSO before the renewal."'
    body = message.get_content().replace("\r\n", "\n")
    assert "Dana asked for a call\nabout SSO before the renewal." in body
    assert f"Acme Rockets: http://127.0.0.1:8000/t/alpha/accounts/{account.pk}/" in body
    hours = Membership.objects.for_tenant(tenant).get(user=alice)
    assert f"Choose which emails you get: http://127.0.0.1:8000/t/alpha/settings/members/{hours.pk}/hours/" in body
    assert channels_of(tenant, alice) == [Channel.EMAIL, Channel.IN_APP]


def test_a_task_a_teammate_gives_a_member_arrives_by_email(client, tenant, alice, bob, account, smtp_server):
    task = Task.objects.create(tenant=tenant, account=account, owner=alice, title="Renewal call")
    client.force_login(alice)

    client.post(f"/t/alpha/tasks/{task.pk}/change/", {"owner": bob.pk})
    notifications_send_due()

    (message,) = smtp_server.messages
    assert message["To"] == "bob@alpha.example"
    assert message["Subject"] == "Alice Admin gave you a task for Acme Rockets: Renewal call"


def test_a_note_sent_twice_is_emailed_once(client, tenant, alice, bob, account, smtp_server):
    client.force_login(bob)
    token = str(uuid.uuid4())

    write_note(client, account, "Kick-off done", tell=[alice.pk], token=token)
    write_note(client, account, "Kick-off done", tell=[alice.pk], token=token)
    notifications_send_due()

    assert len(smtp_server.messages) == 1


def test_a_member_who_turns_these_emails_off_finds_them_in_the_app_only(client, tenant, alice, bob, account, smtp_server):
    hours = Membership.objects.for_tenant(tenant).get(user=alice)
    client.force_login(alice)
    page = client.get(f"/t/alpha/settings/members/{hours.pk}/hours/").content.decode()
    assert "Email notes and tasks from teammates as they come" in page
    client.post(f"/t/alpha/settings/members/{hours.pk}/hours/", {
        "timezone": "", "work_start_hour": 9, "work_end_hour": 17, "work_days": [0, 1, 2, 3, 4], "daily_digest": "on",
    })
    client.force_login(bob)

    write_note(client, account, "Renewal risk: budget freeze", tell=[alice.pk])
    notifications_send_due()

    assert smtp_server.messages == []
    assert channels_of(tenant, alice) == [Channel.IN_APP]


def test_no_one_is_emailed_of_their_own_note(client, tenant, alice, account, smtp_server):
    client.force_login(alice)

    write_note(client, account, "Note to self", tell=[alice.pk])
    notifications_send_due()

    assert smtp_server.messages == [] and channels_of(tenant, alice) == []
