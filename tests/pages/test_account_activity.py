"""The account's activity page: everything recorded about it, newest first, filtered by kind, paged by a cursor."""

import datetime as dt
import re
from html import unescape

import pytest
import time_machine
from django.utils import timezone

from alerts.models import Alert, Subject
from alerts.services import alert_acknowledge, alert_raise, alert_resolve, segment_create, segments_refresh
from csplatform import activity, dashboard
from csplatform.customers.services import account_update, accounts_assign_owner, contact_update, note_add
from health.models import HealthSnapshot
from lifecycle.services import account_move_stage
from playbooks.models import EmailStatus, OutboundEmail, Playbook, Step, Task
from playbooks.services import run_start, task_complete, task_create_once

from ..conftest import make_api_client
from ..factories import AccountFactory, ContactFactory
from .conftest import place

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def texts(html):
    listed = html[html.index('<ol class="timeline activity">') : html.index("</ol>")]
    return [unescape(re.sub(r"<[^>]+>", "", text)).strip() for text in re.findall(r"<strong>(.*?)</strong>", listed)]


def page(client, account, query=""):
    response = client.get(f"/t/alpha/accounts/{account.pk}/activity/{query}")
    return response, response.content.decode()


@pytest.fixture
def story(tenant, stages, alice, bob):
    """An account's month, one event a day from November 2: placed, a note, an alert opened, acknowledged and
    resolved, a task added and done, a playbook started, an email sent, a stage move, a contact in a segment,
    its plan and MRR corrected, a new owner, its champion's role and title changed, health changes."""
    account = AccountFactory(tenant=tenant, name="Granite Labs", owner=bob)
    uma = ContactFactory(account=account, name="Uma Champion", role="champion", title="Head of Operations")
    days = iter(range(30))

    def day():
        return time_machine.travel(START + dt.timedelta(days=next(days)), tick=False)

    with day():
        place(account, stages["onboarding"])
    with day():
        note_add(tenant=tenant, account=account, author=bob, body="Kickoff went well.\nThey want SSO.")
    with day():
        alert = alert_raise(tenant=tenant, account=account, title="Logins dropped", severity="warning")
    with day():
        alert_acknowledge(tenant=tenant, alert=alert, user=bob)
    with day():
        alert_resolve(tenant=tenant, alert=alert, user=bob, note="Called them; holiday week.")
    with day():
        task = task_create_once(
            tenant=tenant, key="t1", account=account, owner=bob, title="Send the SSO guide", due_at=None,
            source="manual",
        )
    with day():
        task_complete(tenant=tenant, task=task, user=bob)
    with day():
        playbook = Playbook.objects.create(tenant=tenant, key="qbr", name="Quarterly review", trigger_type="manual")
        Step.objects.create(tenant=tenant, playbook=playbook, position=1, kind="schedule_demo")
        run_start(tenant=tenant, playbook=playbook, account=account, actor=alice)
    with day():
        OutboundEmail.objects.create(
            tenant=tenant, account=account, to_email="uma@granite.example", subject="Your quarterly review",
            text="Hello", status=EmailStatus.SENT, idempotency_key="e1", sent_at=timezone.now(),
        )
    with day():
        account_move_stage(tenant=tenant, account=account, to_stage=stages["adoption"], actor=bob, reason="Live")
    with day():
        segment_create(tenant=tenant, actor=alice, key="champions", name="Champions",
                       criteria_text='contact.role == "champion"', subject=Subject.CONTACT)
        segments_refresh(tenant=tenant, account_ids=[account.pk])
    with day():
        account_update(tenant=tenant, account=account, fields={"plan": "enterprise", "mrr": 2400}, actor=bob)
    with day():
        accounts_assign_owner(tenant=tenant, account_ids=[account.pk], owner=alice, actor=alice)
    with day():
        contact_update(tenant=tenant, contact=uma, fields={"role": "user", "title": "Advisor", "unsubscribed": True},
                       actor=bob)
    for offset, (score, colour) in enumerate([(80, "green"), (81, "green"), (35, "red"), (36, "red"), (75, "green")]):
        HealthSnapshot.objects.create(
            tenant=tenant, account=account, day=dt.date(2026, 11, 20) + dt.timedelta(days=offset), score=score,
            colour=colour, breakdown=[],
        )
    return account


def test_the_page_tells_the_accounts_story_newest_first_from_every_app(signed_in, story):
    response, html = page(signed_in, story)

    assert response.status_code == 200
    assert texts(html) == [
        "Health turned Green (75), from Red",
        "Health turned Red (35), from Green",
        "Health first scored Green (80)",
        "Changed Uma Champion's title, role and unsubscribed from emails",
        "Changed owner",
        "Changed plan and MRR",
        "Uma Champion entered the segment Champions",
        "Moved from Onboarding to Adoption",
        "Email sent to uma@granite.example",
        "Playbook started: Quarterly review",
        "Task done: Send the SSO guide",
        "Task added: Send the SSO guide",
        "Alert resolved: Logins dropped",
        "Alert acknowledged: Logins dropped",
        "Alert opened: Logins dropped",
        "Note",
        "Placed in Onboarding",
    ]
    assert "Kickoff went well.\nThey want SSO." in html
    # A colour change is a day's, the tenant's, shown without a time.
    assert '<time datetime="2026-11-24">Nov 24, 2026</time>' in html
    assert "Called them; holiday week." in html and "by Bob CSM" in html
    assert "Moved by hand · Live" in html
    assert "Plan: pro → enterprise · MRR: 500.00 → 2,400.00" in html
    assert "Owner: Bob CSM → Alice Admin" in html and "by Alice Admin" in html
    assert "Title: Head of Operations → Advisor · Role: Champion → User · Unsubscribed from emails: no → yes" in html
    assert "by Bob CSM" in html
    email = OutboundEmail.objects.get(idempotency_key="e1")
    assert f'<a href="/t/alpha/outbox/{email.pk}/">Email sent to uma@granite.example</a>' in html


def test_the_account_page_links_its_activity(signed_in, story):
    html = signed_in.get(f"/t/alpha/accounts/{story.pk}/").content.decode()

    assert f'href="/t/alpha/accounts/{story.pk}/activity/">Activity timeline</a>' in html


def test_kinds_narrow_the_list_and_stay_in_the_url(signed_in, story):
    _, html = page(signed_in, story, "?kind=alert&kind=task")

    assert texts(html) == [
        "Task done: Send the SSO guide",
        "Task added: Send the SSO guide",
        "Alert resolved: Logins dropped",
        "Alert acknowledged: Logins dropped",
        "Alert opened: Logins dropped",
    ]
    assert 'value="alert" id="id_kind_2" checked' in html
    assert "Show everything" in html


def test_older_events_page_on_without_skipping_or_repeating_any(signed_in, story, monkeypatch):
    everything = texts(page(signed_in, story)[1])
    monkeypatch.setattr(dashboard, "ACTIVITY_PAGE_SIZE", 2)
    seen, query = [], "?" + "&".join(f"kind={kind}" for kind in activity.KINDS)
    while True:
        response, html = page(signed_in, story, query)
        assert response.status_code == 200
        seen.extend(texts(html))
        older = re.search(r'<a rel="next" href="([^"]+)">Older events</a>', html)
        if older is None:
            break
        query = unescape(older.group(1))
        assert "kind=alert" in query, "the filter stays on the older pages"

    assert seen == everything


def test_entries_of_one_instant_are_neither_lost_nor_repeated_across_pages(tenant, stages, alice):
    """A pass opens several alerts at the same instant; a page may end between them."""
    account = AccountFactory(tenant=tenant)
    with time_machine.travel(START, tick=False):
        for number in range(5):
            alert_raise(tenant=tenant, account=account, title=f"Rule {number}", severity="info")
        note_add(tenant=tenant, account=account, author=alice, body="Same instant")
        HealthSnapshot.objects.create(
            tenant=tenant, account=account, day=START.date(), score=50, colour="yellow", breakdown=[]
        )
    tenant.timezone = "UTC"
    tenant.save()
    everything, _ = activity.account_activity(tenant=tenant, account=account, limit=100)

    paged, cursor = [], None
    while True:
        entries, more = activity.account_activity(tenant=tenant, account=account, cursor=cursor, limit=2)
        paged.extend(entries)
        if not more:
            break
        cursor = activity.Cursor.parse(entries[-1].cursor)

    assert len(everything) == 7
    assert [entry.cursor for entry in paged] == [entry.cursor for entry in everything]


def test_a_page_reads_one_query_per_source_whatever_the_history(
    signed_in, tenant, story, django_assert_max_num_queries
):
    for number in range(30):
        note_add(tenant=tenant, account=story, author=None, body=f"Note {number}")
        alert_raise(tenant=tenant, account=story, title=f"Alert {number}", severity="info")

    # The session, the user, the memberships, the account, the navigation's counts, the sources, and the owners
    # named by the account's changes.
    with django_assert_max_num_queries(7 + len(activity.SOURCES)):
        response, _ = page(signed_in, story)
    assert response.status_code == 200


def test_an_unknown_kind_or_a_forged_position_is_a_400_naming_the_problem(signed_in, story):
    response, html = page(signed_in, story, "?kind=gossip")
    assert response.status_code == 400
    assert "Select a valid choice. gossip is not one of the available choices." in html

    for forged in ("yesterday", "2026-11-02T09:00:00~99~1", "2026-11-02T09:00:00~1~1", "a~b~c",
                   "2026-11-02T09:00:00+00:00~1~99999999999999999999"):
        response, html = page(signed_in, story, f"?before={forged}")
        assert response.status_code == 400, forged
        assert "Not a position in this list" in html


def test_an_account_with_no_history_says_so(signed_in, tenant):
    account = AccountFactory(tenant=tenant)

    _, html = page(signed_in, account)

    assert "Nothing recorded for this account yet" in html


def test_another_tenants_account_is_404_and_its_story_never_shows(signed_in, other_tenant, charlie):
    theirs = AccountFactory(tenant=other_tenant, name="Their Account")
    note_add(tenant=other_tenant, account=theirs, author=charlie, body="Their secret")

    assert signed_in.get(f"/t/alpha/accounts/{theirs.pk}/activity/").status_code == 404
    assert signed_in.get(f"/t/other/accounts/{theirs.pk}/activity/").status_code == 404


def test_a_viewer_reads_the_activity_too(client, viv, story):
    client.force_login(viv)

    response, html = page(client, story)

    assert response.status_code == 200 and "Placed in Onboarding" in html


def test_deleted_tasks_and_alerts_leave_no_broken_entries(signed_in, tenant, story):
    Task.objects.for_tenant(tenant).filter(account=story).delete()
    Alert.objects.for_tenant(tenant).filter(account=story).delete()

    _, html = page(signed_in, story)

    assert not any(text.startswith(("Task", "Alert")) for text in texts(html))


# The same activity through the API.


def test_the_api_pages_through_the_same_entries_by_its_next_links(api, signed_in, story):
    url, texts_read = f"/api/v1/accounts/{story.pk}/activity/?page_size=5", []
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        texts_read.extend(entry["text"] for entry in body["results"])
        url = body["next"]

    assert texts_read == texts(page(signed_in, story)[1])
    first = api.get(f"/api/v1/accounts/{story.pk}/activity/?kind=note").json()["results"][0]
    assert first["kind"] == "note" and first["by"] == "Bob CSM"
    assert first["detail"] == "Kickoff went well.\nThey want SSO."
    assert first["at"] == "2026-11-03T09:00:00Z"


def test_the_api_filters_by_kind(api, story):
    body = api.get(f"/api/v1/accounts/{story.pk}/activity/?kind=stage&kind=segment").json()

    assert [entry["text"] for entry in body["results"]] == [
        "Uma Champion entered the segment Champions",
        "Moved from Onboarding to Adoption",
        "Placed in Onboarding",
    ]
    assert body["next"] is None


@pytest.mark.parametrize(
    "query, field",
    [("kind=gossip", "kind"), ("before=2026-11-02T09:00:00~1~1", "before"), ("before=~~", "before"),
     ("page_size=0", "page_size"), ("page_size=201", "page_size"), ("page_size=many", "page_size")],
)
def test_the_api_answers_400_naming_the_field_for_a_bad_query(api, story, query, field):
    response = api.get(f"/api/v1/accounts/{story.pk}/activity/?{query}")

    assert response.status_code == 400
    assert field in str(response.json())


def test_the_api_answers_404_for_another_tenants_account_and_needs_the_read_scope(api, other_api, tenant, story):
    assert other_api.get(f"/api/v1/accounts/{story.pk}/activity/").status_code == 404
    ingest_only = make_api_client(tenant, scopes=["ingest"])
    assert ingest_only.get(f"/api/v1/accounts/{story.pk}/activity/").status_code == 403
