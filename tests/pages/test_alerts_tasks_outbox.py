"""The alerts inbox, my tasks, the outbox and the account page's playbook, task and alert sections."""

import datetime as dt
import itertools

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.models import Alert, AlertRule, AlertStatus
from alerts.services import alerts_snooze, segment_create, segments_refresh
from csplatform.tenancy.models import AuditLogEntry
from csplatform.tenancy.timezones import tenant_today, tenant_zone
from playbooks.models import EmailStatus, OutboundEmail, Playbook, Run, RunStatus, Step, StepRun, Task
from playbooks.services import playbook_templates_install

from ..factories import AccountFactory, ContactFactory

pytestmark = pytest.mark.django_db
numbers = itertools.count()


def make_alert(account, *, title="Logins dropped", severity="warning", status=AlertStatus.OPEN, rule=None):
    return Alert.objects.create(
        tenant=account.tenant, account=account, rule=rule, title=title, severity=severity, status=status,
        opened_at=timezone.now() - dt.timedelta(hours=next(numbers) + 1),
        resolved_at=timezone.now() if status == AlertStatus.RESOLVED else None,
    )


def make_rule(tenant, key):
    return AlertRule.objects.create(
        tenant=tenant, key=key, name=key.replace("_", " ").title(), condition={}, condition_text="health < 40"
    )


def make_task(account, owner, title, due_at):
    return Task.objects.create(tenant=account.tenant, account=account, owner=owner, title=title, due_at=due_at)


def make_email(account, *, subject="Welcome aboard", status=EmailStatus.SENT, step_run=None, html="", text="Hello"):
    return OutboundEmail.objects.create(
        tenant=account.tenant, account=account, owner=account.owner, to_email="uma@acme.example", subject=subject,
        text=text, html=html,
        status=status, step_run=step_run, idempotency_key=f"test:{next(numbers)}",
        sent_at=timezone.now() if status == EmailStatus.SENT else None,
    )


def demo_step_run(account):
    """A run of a one-step schedule-demo playbook, as the runner leaves it."""
    playbook = Playbook.objects.create(
        tenant=account.tenant, key=f"demo_{next(numbers)}", name="Book a demo", trigger_type="manual"
    )
    step = Step.objects.create(tenant=account.tenant, playbook=playbook, position=1, kind="schedule_demo")
    run = Run.objects.create(tenant=account.tenant, playbook=playbook, account=account, started_at=timezone.now())
    return StepRun.objects.create(tenant=account.tenant, run=run, step=step, due_at=timezone.now(), status="done")


def at_local(tenant, day, hour):
    return dt.datetime.combine(day, dt.time(hour), tzinfo=tenant_zone(tenant))


@pytest.fixture
def acme(tenant, bob):
    return AccountFactory(tenant=tenant, name="Acme Rockets", owner=bob)


@pytest.fixture
def globex(tenant, alice):
    return AccountFactory(tenant=tenant, name="Globex", owner=alice)


@pytest.fixture
def as_bob(client, bob):
    client.force_login(bob)
    return client


@pytest.fixture
def as_viv(client, viv):
    client.force_login(viv)
    return client


def same_query_count(client, url, grow):
    """The queries of one GET of `url`, before and after `grow()` adds more data."""
    client.get(url)  # warm the session and content-type caches
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    grow()
    with CaptureQueriesContext(connection) as large:
        assert client.get(url).status_code == 200
    return len(small.captured_queries), len(large.captured_queries)


# Alerts inbox


def test_inbox_shows_open_alerts_of_my_accounts_with_counts_per_tab(as_bob, acme, globex):
    make_alert(acme, title="Acme logins dropped")
    make_alert(acme, title="Acme card expires", status=AlertStatus.ACKNOWLEDGED)
    make_alert(globex, title="Globex seats unused")
    html = as_bob.get("/t/alpha/alerts/").content.decode()
    assert "Acme logins dropped" in html
    assert "Acme card expires" not in html  # another tab
    assert "Globex seats unused" not in html  # not bob's account
    assert 'aria-current="page">Open <span class="count">1</span>' in html
    assert 'Acknowledged <span class="count">1</span>' in html
    everyone = as_bob.get("/t/alpha/alerts/?owner=all").content.decode()
    assert "Globex seats unused" in everyone and "Acme logins dropped" in everyone


def test_inbox_filters_by_severity_rule_and_tab(signed_in, tenant, acme):
    churn, cards = make_rule(tenant, "churn_risk"), make_rule(tenant, "card_expiring")
    make_alert(acme, title="Churn risk now", severity="critical", rule=churn)
    make_alert(acme, title="Card expiring soon", severity="info", rule=cards)
    make_alert(acme, title="Solved last week", status=AlertStatus.RESOLVED, rule=churn)
    critical = signed_in.get("/t/alpha/alerts/?severity=critical").content.decode()
    assert "Churn risk now" in critical and "Card expiring soon" not in critical
    by_rule = signed_in.get(f"/t/alpha/alerts/?rule={cards.pk}").content.decode()
    assert "Card expiring soon" in by_rule and "Churn risk now" not in by_rule
    resolved = signed_in.get(f"/t/alpha/alerts/?tab=resolved&rule={churn.pk}").content.decode()
    assert "Solved last week" in resolved and "Churn risk now" not in resolved


def test_inbox_filters_by_segment_and_keeps_it_on_the_tabs(signed_in, tenant, alice, acme, globex):
    segment_create(
        tenant=tenant, actor=alice, key="rockets", name="Rockets", criteria_text='account.name == "Acme Rockets"'
    )
    segments_refresh(tenant=tenant, account_ids=[acme.pk, globex.pk])
    make_alert(acme, title="Acme logins dropped")
    make_alert(globex, title="Globex seats unused")

    html = signed_in.get("/t/alpha/alerts/?owner=all&segment=rockets").content.decode()

    assert "Acme logins dropped" in html and "Globex seats unused" not in html
    assert '<option value="rockets" selected>Rockets</option>' in html
    assert "?tab=resolved&amp;owner=all&amp;segment=rockets" in html
    everyone = signed_in.get("/t/alpha/alerts/?owner=all&segment=nonesuch").content.decode()
    assert "Acme logins dropped" in everyone and "Globex seats unused" in everyone
    assert "Select a valid choice. nonesuch is not one of the available choices." in everyone


def test_inbox_lists_the_most_severe_first_when_asked_each_severity_newest_first(signed_in, acme):
    # Each alert made opened an hour before the one made before it.
    make_alert(acme, title="Newest critical", severity="critical")
    make_alert(acme, title="Newer warning", severity="warning")
    make_alert(acme, title="Old info", severity="info")
    make_alert(acme, title="Oldest critical", severity="critical")

    newest = signed_in.get("/t/alpha/alerts/").content.decode()
    severe = signed_in.get("/t/alpha/alerts/?sort=-severity").content.decode()

    titles = ["Newest critical", "Newer warning", "Old info", "Oldest critical"]
    assert sorted(titles, key=newest.index) == titles
    assert sorted(titles, key=severe.index) == ["Newest critical", "Oldest critical", "Newer warning", "Old info"]
    assert '<option value="-severity" selected>Most severe first</option>' in severe
    assert "?tab=resolved&amp;owner=all&amp;sort=-severity" in severe
    unknown = signed_in.get("/t/alpha/alerts/?sort=loudest").content.decode()
    assert "Select a valid choice. loudest is not one of the available choices." in unknown


def test_inbox_names_each_filter_value_it_does_not_know_and_still_applies_the_others(signed_in, tenant, acme):
    make_alert(acme, title="Churn risk now", severity="critical")
    make_alert(acme, title="Card expiring soon", severity="info")

    html = signed_in.get("/t/alpha/alerts/?severity=critical&rule=999999&owner=nobody&tab=archived").content.decode()

    assert "Churn risk now" in html and "Card expiring soon" not in html
    for value in ("999999", "nobody", "archived"):
        assert f"Select a valid choice. {value} is not one of the available choices." in html
    assert "<script>" not in signed_in.get("/t/alpha/alerts/?rule=<script>").content.decode()


def test_acknowledge_in_place_returns_the_updated_row(as_bob, bob, acme):
    alert = make_alert(acme)
    response = as_bob.post(f"/t/alpha/alerts/{alert.pk}/acknowledge/", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.startswith(f'<tr id="alert-{alert.pk}"')
    assert "Acknowledged by Bob CSM" in html
    assert ">Acknowledge</button>" not in html  # nothing left to acknowledge
    alert.refresh_from_db()
    assert alert.status == AlertStatus.ACKNOWLEDGED and alert.acknowledged_by == bob


def test_acknowledge_without_javascript_redirects_back_with_a_message(as_bob, acme):
    alert = make_alert(acme)
    response = as_bob.post(
        f"/t/alpha/alerts/{alert.pk}/acknowledge/", {"next": "/t/alpha/alerts/?severity=warning"}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/t/alpha/alerts/?severity=warning"
    assert "Acknowledged: Logins dropped" in response.content.decode()


def test_acknowledge_ignores_a_next_address_on_another_site(as_bob, acme):
    alert = make_alert(acme)
    response = as_bob.post(f"/t/alpha/alerts/{alert.pk}/acknowledge/", {"next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/t/alpha/alerts/"


def test_resolve_in_place_keeps_the_note(as_bob, bob, acme):
    alert = make_alert(acme, status=AlertStatus.ACKNOWLEDGED)
    response = as_bob.post(
        f"/t/alpha/alerts/{alert.pk}/resolve/", {"note": "Called the champion; usage is back"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert "Resolved by hand by Bob CSM" in html and "Note: Called the champion; usage is back" in html
    alert.refresh_from_db()
    assert (alert.status, alert.resolution, alert.note, alert.resolved_by) == (
        AlertStatus.RESOLVED, "manual", "Called the champion; usage is back", bob,
    )


def test_acknowledging_a_resolved_alert_is_refused_in_the_row(as_bob, acme):
    alert = make_alert(acme, status=AlertStatus.RESOLVED)
    response = as_bob.post(f"/t/alpha/alerts/{alert.pk}/acknowledge/", HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "Only an open alert can be acknowledged" in response.content.decode()
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED


def test_a_viewer_sees_alerts_but_cannot_act_on_them(as_viv, acme):
    alert = make_alert(acme)
    html = as_viv.get("/t/alpha/alerts/").content.decode()
    assert "Logins dropped" in html and "/acknowledge/" not in html and "/resolve/" not in html
    assert as_viv.post(f"/t/alpha/alerts/{alert.pk}/acknowledge/").status_code == 403
    assert as_viv.post(f"/t/alpha/alerts/{alert.pk}/resolve/", {"note": "x"}).status_code == 403
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN


def test_another_tenants_alert_is_not_found(signed_in, other_tenant):
    theirs = make_alert(AccountFactory(tenant=other_tenant))
    assert signed_in.post(f"/t/alpha/alerts/{theirs.pk}/acknowledge/").status_code == 404
    assert signed_in.post(f"/t/alpha/alerts/{theirs.pk}/resolve/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == AlertStatus.OPEN


def test_inbox_query_count_does_not_grow_with_alerts(signed_in, tenant, alice, bob):
    rule = make_rule(tenant, "churn_risk")
    make_alert(AccountFactory(tenant=tenant, owner=bob), rule=rule)

    def grow():
        for number in range(30):
            account = AccountFactory(tenant=tenant, owner=alice if number % 2 else bob)
            make_alert(account, rule=rule if number % 3 else None, severity="critical")

    small, large = same_query_count(signed_in, "/t/alpha/alerts/?owner=all", grow)
    assert small == large


def test_inbox_pages_keep_the_tab_and_filters(signed_in, tenant, acme):
    for _ in range(51):
        make_alert(acme, severity="critical")

    html = signed_in.get("/t/alpha/alerts/?tab=open&owner=all&severity=critical").content.decode()

    assert "Page 1 of 2" in html
    assert '<a href="?tab=open&amp;owner=all&amp;severity=critical&amp;page=2">Older</a>' in html


def bulk(client, action, alerts, **fields):
    data = {"action": action, "alert": [alert.pk for alert in alerts], "next": "/t/alpha/alerts/?owner=all", **fields}
    return client.post("/t/alpha/alerts/bulk/", data, follow=True)


def statuses(*alerts):
    return [Alert.objects.for_tenant(alert.tenant).get(pk=alert.pk).status for alert in alerts]


def test_the_inbox_offers_a_checkbox_per_active_alert_and_bulk_actions_to_editors_only(as_bob, client, viv, acme):
    alert = make_alert(acme)
    html = as_bob.get("/t/alpha/alerts/").content.decode()
    assert f'name="alert" value="{alert.pk}" form="alerts-bulk"' in html
    assert "Acknowledge selected" in html and "Resolve selected" in html
    assert 'data-select-all="alerts-bulk"' in html
    resolved_tab = as_bob.get("/t/alpha/alerts/?tab=resolved").content.decode()
    assert 'form="alerts-bulk"' not in resolved_tab
    client.force_login(viv)
    assert 'form="alerts-bulk"' not in client.get("/t/alpha/alerts/").content.decode()


def test_a_csm_acknowledges_several_alerts_at_once_with_one_note(as_bob, bob, acme, globex):
    first, second, untouched = make_alert(acme), make_alert(globex), make_alert(acme, title="Not ticked")

    response = bulk(as_bob, "acknowledge", [first, second], note="Looking into both this week")

    assert response.redirect_chain[-1][0] == "/t/alpha/alerts/?owner=all"
    assert "Acknowledged 2 alerts." in response.content.decode()
    assert statuses(first, second, untouched) == [AlertStatus.ACKNOWLEDGED, AlertStatus.ACKNOWLEDGED, AlertStatus.OPEN]
    stored = Alert.objects.for_tenant(acme.tenant).get(pk=first.pk)
    assert (stored.acknowledged_by, stored.note) == (bob, "Looking into both this week")


def test_bulk_resolve_closes_open_and_acknowledged_alerts_by_hand_and_counts_those_already_resolved(as_bob, bob, acme):
    open_one, seen_one = make_alert(acme), make_alert(acme, status=AlertStatus.ACKNOWLEDGED)
    done_before = make_alert(acme, status=AlertStatus.RESOLVED)

    response = bulk(as_bob, "resolve", [open_one, seen_one, done_before], note="Renewal signed")

    assert "Resolved 2 of the 3 alerts selected; the rest were already resolved." in response.content.decode()
    assert statuses(open_one, seen_one) == [AlertStatus.RESOLVED, AlertStatus.RESOLVED]
    stored = Alert.objects.for_tenant(acme.tenant).get(pk=seen_one.pk)
    assert (stored.resolution, stored.resolved_by, stored.note) == ("manual", bob, "Renewal signed")
    assert Alert.objects.for_tenant(acme.tenant).get(pk=done_before.pk).note == ""


def test_bulk_acknowledge_leaves_alerts_that_are_no_longer_open_as_they_were(as_bob, acme):
    seen = make_alert(acme, status=AlertStatus.ACKNOWLEDGED)

    response = bulk(as_bob, "acknowledge", [seen])

    assert "Acknowledged 0 of the 1 alerts selected; the rest were not open." in response.content.decode()
    assert statuses(seen) == [AlertStatus.ACKNOWLEDGED]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "acknowledge"}, "Select the alerts first."),
        ({"action": "acknowledge", "alert": ["abc"]}, "Select alerts from the list."),
        ({"action": "acknowledge", "alert": [str(2**64)]}, "Select alerts from the list."),
        ({"action": "archive", "alert": ["1"]}, "Choose to acknowledge, resolve, snooze or wake the selected alerts."),
        ({"alert": ["1"]}, "Choose what to do with the selected alerts."),
    ],
)
def test_a_bulk_action_without_a_fitting_selection_is_named_and_changes_nothing(as_bob, acme, data, message):
    alert = make_alert(acme)
    response = as_bob.post("/t/alpha/alerts/bulk/", data, follow=True)
    assert response.status_code == 200 and message in response.content.decode()
    assert statuses(alert) == [AlertStatus.OPEN]


def test_a_bulk_action_never_reaches_another_tenants_alerts_and_viewers_are_refused(
    as_bob, client, viv, acme, other_tenant
):
    ours, theirs = make_alert(acme), make_alert(AccountFactory(tenant=other_tenant))

    response = bulk(as_bob, "resolve", [ours, theirs])

    assert "Resolved 1 of the 2 alerts selected; the rest were already resolved." in response.content.decode()
    assert statuses(ours, theirs) == [AlertStatus.RESOLVED, AlertStatus.OPEN]
    client.force_login(viv)
    another = make_alert(acme)
    assert client.post("/t/alpha/alerts/bulk/", {"action": "resolve", "alert": [another.pk]}).status_code == 403
    assert statuses(another) == [AlertStatus.OPEN]


def snoozed_until(alert):
    return Alert.objects.for_tenant(alert.tenant).get(pk=alert.pk).snoozed_until


def test_a_snoozed_alert_leaves_the_open_list_and_the_counts_until_its_time_comes(as_bob, bob, acme):
    alert, other = make_alert(acme, title="Logins dropped"), make_alert(acme, title="Card expires soon")

    response = bulk(as_bob, "snooze", [alert], days="3")

    assert "Snoozed 1 alert." in response.content.decode()
    until = snoozed_until(alert)
    assert dt.timedelta(days=3) - dt.timedelta(minutes=1) < until - timezone.now() <= dt.timedelta(days=3)
    assert statuses(alert) == [AlertStatus.OPEN]
    open_tab = as_bob.get("/t/alpha/alerts/").content.decode()
    assert "Logins dropped" not in open_tab and "Card expires soon" in open_tab
    assert 'Open <span class="count">1</span>' in open_tab and 'Snoozed <span class="count">1</span>' in open_tab
    assert 'Alerts <span class="nav-count">1<span class="visually-hidden"> open</span>' in open_tab
    snoozed_tab = as_bob.get("/t/alpha/alerts/?tab=snoozed").content.decode()
    assert "Logins dropped" in snoozed_tab and "Snoozed until" in snoozed_tab and "by Bob CSM" in snoozed_tab
    assert "Wake selected" in snoozed_tab

    Alert.objects.for_tenant(acme.tenant).filter(pk=alert.pk).update(snoozed_until=timezone.now())
    assert "Logins dropped" in as_bob.get("/t/alpha/alerts/").content.decode()


def test_waking_a_snoozed_alert_brings_it_back_now(as_bob, acme):
    alert = make_alert(acme)
    bulk(as_bob, "snooze", [alert], days="7")

    response = bulk(as_bob, "wake", [alert])

    assert "Woke 1 alert." in response.content.decode()
    assert snoozed_until(alert) is None


def test_snoozing_needs_a_length_offered_and_skips_resolved_alerts(as_bob, acme):
    alert, resolved = make_alert(acme), make_alert(acme, status=AlertStatus.RESOLVED)

    assert "Choose how long to snooze" in bulk(as_bob, "snooze", [alert]).content.decode()
    assert "Snooze for one of the lengths offered." in bulk(as_bob, "snooze", [alert], days="365").content.decode()
    assert snoozed_until(alert) is None

    response = bulk(as_bob, "snooze", [alert, resolved], days="1")
    assert "Snoozed 1 of the 2 alerts selected; the rest were already resolved." in response.content.decode()
    assert snoozed_until(resolved) is None


def test_a_snooze_lasts_from_a_moment_ahead_to_ninety_days(acme, bob):
    alert = make_alert(acme)
    for until in (timezone.now() - dt.timedelta(minutes=1), timezone.now() + dt.timedelta(days=91)):
        with pytest.raises(ValidationError, match="next 90 days"):
            alerts_snooze(tenant=acme.tenant, alert_ids=[alert.pk], until=until, user=bob)


def test_a_row_acted_on_in_place_keeps_its_checkbox_column(as_bob, acme):
    alert = make_alert(acme)
    html = as_bob.post(f"/t/alpha/alerts/{alert.pk}/acknowledge/", HTTP_HX_REQUEST="true").content.decode()
    assert f'name="alert" value="{alert.pk}" form="alerts-bulk"' in html
    on_account_page = as_bob.post(
        f"/t/alpha/alerts/{alert.pk}/resolve/", {"context": "account"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert 'class="select"' not in on_account_page


# My tasks


def test_my_tasks_groups_overdue_today_and_upcoming(as_bob, tenant, bob, alice, acme):
    today = tenant_today(tenant)
    make_task(acme, bob, "Chase the signed contract", at_local(tenant, today - dt.timedelta(days=2), 9))
    make_task(acme, bob, "Kickoff call", at_local(tenant, today, 23))
    make_task(acme, bob, "Quarterly review", at_local(tenant, today + dt.timedelta(days=5), 10))
    make_task(acme, bob, "Read the onboarding notes", None)
    make_task(acme, alice, "Alice's own task", at_local(tenant, today, 12))
    done = make_task(acme, bob, "Already done", at_local(tenant, today, 8))
    Task.objects.for_tenant(tenant).filter(pk=done.pk).update(completed_at=timezone.now())
    html = as_bob.get("/t/alpha/tasks/").content.decode()
    overdue = html[html.index('id="tasks-overdue"') : html.index('id="tasks-today"')]
    due_today = html[html.index('id="tasks-today"') : html.index('id="tasks-upcoming"')]
    upcoming = html[html.index('id="tasks-upcoming"') :]
    assert "Chase the signed contract" in overdue
    assert "Kickoff call" in due_today
    assert "Quarterly review" in upcoming and "Read the onboarding notes" in upcoming
    assert "Alice&#x27;s own task" not in html and "Already done" not in html


def test_admins_can_see_everyones_tasks_and_csms_cannot(client, tenant, alice, bob, acme):
    make_task(acme, bob, "Bob's task", None)
    client.force_login(alice)
    assert "Bob&#x27;s task" not in client.get("/t/alpha/tasks/").content.decode()
    assert "Bob&#x27;s task" in client.get("/t/alpha/tasks/?owner=all").content.decode()
    make_task(acme, alice, "Alice's task", None)
    client.force_login(bob)
    refused = client.get("/t/alpha/tasks/?owner=all").content.decode()
    assert "Alice&#x27;s task" not in refused and "Bob&#x27;s task" in refused
    assert "Select a valid choice. all is not one of the available choices." in refused


def test_complete_a_task_in_place(as_bob, bob, acme):
    task = make_task(acme, bob, "Kickoff call", timezone.now())
    response = as_bob.post(f"/t/alpha/tasks/{task.pk}/complete/", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.startswith(f'<tr id="task-{task.pk}" class="done"')
    assert "Done by Bob CSM" in html and "/complete/" not in html
    task.refresh_from_db()
    assert task.completed_at is not None and task.completed_by == bob


def test_complete_a_task_without_javascript(as_bob, bob, acme):
    task = make_task(acme, bob, "Kickoff call", timezone.now())
    response = as_bob.post(f"/t/alpha/tasks/{task.pk}/complete/", {"next": "/t/alpha/tasks/"}, follow=True)
    html = response.content.decode()
    assert "Done: Kickoff call" in html
    assert f'id="task-{task.pk}"' not in html  # no longer open


def test_a_viewer_cannot_complete_tasks_and_other_tenants_tasks_are_not_found(
    client, viv, alice, bob, acme, other_tenant
):
    task = make_task(acme, bob, "Kickoff call", None)
    client.force_login(viv)
    assert client.post(f"/t/alpha/tasks/{task.pk}/complete/").status_code == 403
    theirs = make_task(AccountFactory(tenant=other_tenant), None, "Theirs", None)
    client.force_login(alice)
    assert client.post(f"/t/alpha/tasks/{theirs.pk}/complete/").status_code == 404
    task.refresh_from_db()
    theirs.refresh_from_db()
    assert task.completed_at is None and theirs.completed_at is None


def change_task(client, task, **data):
    return client.post(f"/t/alpha/tasks/{task.pk}/change/", data, HTTP_HX_REQUEST="true")


def test_a_csm_moves_a_task_to_another_day_due_by_five_in_their_zone(as_bob, tenant, bob, acme):
    task = make_task(acme, bob, "Kickoff call", at_local(tenant, tenant_today(tenant), 9))
    later = tenant_today(tenant) + dt.timedelta(days=3)

    response = change_task(as_bob, task, due=later.isoformat(), owner=bob.pk)

    assert response.status_code == 200 and "Saved." in response.content.decode()
    stored = Task.objects.for_tenant(tenant).get(pk=task.pk)
    assert stored.due_at == at_local(tenant, later, 17)


def test_a_task_given_to_another_member_keeps_its_due_time_and_the_change_is_audited(as_bob, tenant, bob, alice, acme):
    due_at = at_local(tenant, tenant_today(tenant) + dt.timedelta(days=2), 9)
    task = make_task(acme, bob, "Kickoff call", due_at)

    response = change_task(as_bob, task, due=due_at.date().isoformat(), owner=alice.pk)

    assert "Alice Admin" in response.content.decode()
    stored = Task.objects.for_tenant(tenant).get(pk=task.pk)
    assert (stored.owner, stored.due_at) == (alice, due_at)
    entry = AuditLogEntry.objects.for_tenant(tenant).get(action="task.changed")
    assert (entry.before["owner"], entry.after["owner"]) == ("bob@alpha.example", "alice@alpha.example")


def test_a_task_can_lose_its_date_and_its_owner(as_bob, tenant, bob, acme):
    task = make_task(acme, bob, "Read the notes", timezone.now())

    change_task(as_bob, task, due="", owner="")

    stored = Task.objects.for_tenant(tenant).get(pk=task.pk)
    assert (stored.owner, stored.due_at) == (None, None)


def test_a_task_change_naming_no_member_or_no_date_is_refused_in_the_row(as_bob, tenant, bob, charlie, acme):
    due_at = at_local(tenant, tenant_today(tenant), 9)
    task = make_task(acme, bob, "Kickoff call", due_at)

    outsider = change_task(as_bob, task, due=due_at.date().isoformat(), owner=charlie.pk)
    bad_day = change_task(as_bob, task, due="31/02/2027", owner=bob.pk)

    assert outsider.status_code == 400 and "Choose a member of this team." in outsider.content.decode()
    assert bad_day.status_code == 400 and "Enter a valid date." in bad_day.content.decode()
    stored = Task.objects.for_tenant(tenant).get(pk=task.pk)
    assert (stored.owner, stored.due_at) == (bob, due_at)


def test_a_viewer_cannot_change_tasks_nor_anyone_a_done_or_another_tenants_one(
    client, viv, alice, bob, acme, other_tenant
):
    task = make_task(acme, bob, "Kickoff call", None)
    client.force_login(viv)
    assert change_task(client, task, owner=alice.pk).status_code == 403
    done = make_task(acme, bob, "Done already", None)
    Task.objects.for_tenant(acme.tenant).filter(pk=done.pk).update(completed_at=timezone.now())
    theirs = make_task(AccountFactory(tenant=other_tenant), None, "Theirs", None)
    client.force_login(alice)
    assert change_task(client, done, owner=alice.pk).status_code == 404
    assert change_task(client, theirs, owner=alice.pk).status_code == 404
    assert Task.objects.for_tenant(acme.tenant).get(pk=task.pk).owner == bob


def test_tasks_query_count_does_not_grow_with_tasks(signed_in, tenant, alice, bob):
    make_task(AccountFactory(tenant=tenant), alice, "First", timezone.now())

    def grow():
        for number in range(30):
            account = AccountFactory(tenant=tenant)
            due_at = timezone.now() + dt.timedelta(days=number - 15)
            make_task(account, alice if number % 2 else bob, f"Task {number}", due_at)

    small, large = same_query_count(signed_in, "/t/alpha/tasks/?owner=all", grow)
    assert small == large


# Outbox


def test_outbox_lists_emails_and_demo_invitations_with_filters(signed_in, acme):
    make_email(acme, subject="Welcome aboard")
    make_email(acme, subject="Your personalised demo", step_run=demo_step_run(acme))
    make_email(acme, subject="Check this draft", status=EmailStatus.PENDING_REVIEW)
    html = signed_in.get("/t/alpha/outbox/").content.decode()
    for subject in ("Welcome aboard", "Your personalised demo", "Check this draft"):
        assert subject in html
    assert html.count('<span class="tag">Demo invitation</span>') == 1
    demos = signed_in.get("/t/alpha/outbox/?kind=demo").content.decode()
    assert "Your personalised demo" in demos and "Welcome aboard" not in demos
    held = signed_in.get("/t/alpha/outbox/?status=pending_review").content.decode()
    assert "Check this draft" in held and "Welcome aboard" not in held
    assert "Waiting for review <strong>1</strong>" in held


def test_the_outbox_names_each_filter_value_it_does_not_know_and_still_applies_the_others(signed_in, acme):
    make_email(acme, subject="Welcome aboard")
    make_email(acme, subject="Check this draft", status=EmailStatus.PENDING_REVIEW)

    html = signed_in.get("/t/alpha/outbox/?status=pending_review&kind=fax&scope=theirs").content.decode()

    assert "Check this draft" in html and "Welcome aboard" not in html
    for value in ("fax", "theirs"):
        assert f"Select a valid choice. {value} is not one of the available choices." in html


def test_outbox_shows_my_accounts_emails_or_everyones_and_keeps_the_other_filters(as_bob, acme, globex):
    make_email(acme, subject="Acme draft", status=EmailStatus.PENDING_REVIEW)
    make_email(acme, subject="Acme welcome")
    make_email(globex, subject="Globex draft", status=EmailStatus.PENDING_REVIEW)

    everyone = as_bob.get("/t/alpha/outbox/").content.decode()
    mine = as_bob.get("/t/alpha/outbox/?scope=mine&status=pending_review").content.decode()

    assert "Acme draft" in everyone and "Globex draft" in everyone
    assert "Acme draft" in mine and "Globex draft" not in mine and "Acme welcome" not in mine
    assert "Waiting for review <strong>1</strong>" in mine and "Any status <strong>2</strong>" in mine
    assert 'href="?scope=mine&amp;status=pending_review&amp;kind=demo"' in mine


def test_reading_an_email_shows_text_and_html_without_running_it(signed_in, acme):
    email = make_email(acme, text="Hi <Uma>", html='<p onclick="steal()">Hi</p><script>alert(1)</script>')
    html = signed_in.get(f"/t/alpha/outbox/{email.pk}/").content.decode()
    assert "Hi &lt;Uma&gt;" in html
    escaped = "&lt;p onclick=&quot;steal()&quot;&gt;Hi&lt;/p&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f'sandbox="" srcdoc="{escaped}"' in html
    assert "<script>alert(1)" not in html


def test_approve_with_edits_queues_the_email(signed_in, acme):
    email = make_email(acme, subject="Draft", status=EmailStatus.PENDING_REVIEW)
    response = signed_in.post(
        f"/t/alpha/outbox/{email.pk}/decide/",
        {"action": "approve", "subject": "Welcome, Acme", "text": "Hello Uma", "html": ""},
        follow=True,
    )
    assert "Approved; it is queued to send: Welcome, Acme" in response.content.decode()
    email.refresh_from_db()
    assert (email.status, email.subject, email.text) == (EmailStatus.QUEUED, "Welcome, Acme", "Hello Uma")


def test_edit_keeps_the_email_waiting_and_an_empty_subject_is_refused(signed_in, acme):
    email = make_email(acme, subject="Draft", status=EmailStatus.PENDING_REVIEW)
    signed_in.post(f"/t/alpha/outbox/{email.pk}/decide/", {"action": "edit", "subject": "Better", "text": "Hi"})
    email.refresh_from_db()
    assert (email.status, email.subject) == (EmailStatus.PENDING_REVIEW, "Better")
    response = signed_in.post(f"/t/alpha/outbox/{email.pk}/decide/", {"action": "edit", "subject": "", "text": "Hi"})
    assert response.status_code == 400 and "This field is required." in response.content.decode()
    email.refresh_from_db()
    assert email.subject == "Better"


def test_approve_and_skip_in_place_from_the_list(signed_in, acme):
    first = make_email(acme, subject="First draft", status=EmailStatus.PENDING_REVIEW)
    second = make_email(acme, subject="Second draft", status=EmailStatus.PENDING_REVIEW)
    response = signed_in.post(f"/t/alpha/outbox/{first.pk}/decide/", {"action": "approve"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.startswith(f'<tr id="email-{first.pk}"') and "Queued" in html and "Approved" in html
    response = signed_in.post(f"/t/alpha/outbox/{second.pk}/decide/", {"action": "skip"}, HTTP_HX_REQUEST="true")
    assert "Skipped; it will not be sent" in response.content.decode()
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.subject, second.status) == (EmailStatus.QUEUED, "First draft", EmailStatus.SKIPPED)


def test_a_sent_email_cannot_be_approved_again(signed_in, acme):
    email = make_email(acme, status=EmailStatus.SENT)
    response = signed_in.post(f"/t/alpha/outbox/{email.pk}/decide/", {"action": "skip"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and "not waiting for review" in response.content.decode()
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT


def email_statuses(*emails):
    return [OutboundEmail.objects.for_tenant(email.tenant).get(pk=email.pk).status for email in emails]


def test_a_csm_approves_the_ticked_emails_held_for_review_at_once(signed_in, tenant, alice, acme):
    first, second, untouched = (make_email(acme, status=EmailStatus.PENDING_REVIEW) for _ in range(3))
    sent = make_email(acme)
    page = signed_in.get("/t/alpha/outbox/").content.decode()
    assert f'name="email" value="{first.pk}" form="outbox-bulk"' in page
    assert f'name="email" value="{sent.pk}"' not in page

    response = signed_in.post(
        "/t/alpha/outbox/bulk/",
        {"action": "approve", "email": [first.pk, second.pk], "next": "/t/alpha/outbox/?status=pending_review"},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == "/t/alpha/outbox/?status=pending_review"
    assert "Approved 2 emails." in response.content.decode()
    assert email_statuses(first, second, untouched) == ["queued", "queued", "pending_review"]
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="email.approved", actor=alice).count() == 2


def test_bulk_skip_leaves_emails_no_longer_held_as_they_were_and_counts_them(signed_in, tenant, acme, other_tenant):
    held, sent = make_email(acme, status=EmailStatus.PENDING_REVIEW), make_email(acme)
    theirs = make_email(AccountFactory(tenant=other_tenant), status=EmailStatus.PENDING_REVIEW)

    data = {"action": "skip", "email": [held.pk, sent.pk, theirs.pk]}
    html = signed_in.post("/t/alpha/outbox/bulk/", data, follow=True).content.decode()

    assert "Skipped 1 of the 3 emails selected; the rest were no longer waiting for review." in html
    assert email_statuses(held, sent, theirs) == ["skipped", "sent", "pending_review"]


def test_a_bulk_decision_without_emails_or_action_is_named_and_viewers_are_refused(signed_in, client, viv, acme):
    held = make_email(acme, status=EmailStatus.PENDING_REVIEW)
    nothing = signed_in.post("/t/alpha/outbox/bulk/", {"action": "approve"}, follow=True).content.decode()
    unknown = signed_in.post("/t/alpha/outbox/bulk/", {"action": "send", "email": [held.pk]}, follow=True)
    unknown = unknown.content.decode()
    assert "Select the emails first." in nothing and "Choose to approve or skip." in unknown
    client.force_login(viv)
    assert client.post("/t/alpha/outbox/bulk/", {"action": "approve", "email": [held.pk]}).status_code == 403
    assert email_statuses(held) == [EmailStatus.PENDING_REVIEW]


def test_a_viewer_reads_the_outbox_but_cannot_decide(as_viv, acme):
    email = make_email(acme, status=EmailStatus.PENDING_REVIEW)
    assert "Approve" not in as_viv.get("/t/alpha/outbox/").content.decode()
    assert "Approve and queue" not in as_viv.get(f"/t/alpha/outbox/{email.pk}/").content.decode()
    assert as_viv.post(f"/t/alpha/outbox/{email.pk}/decide/", {"action": "approve"}).status_code == 403
    email.refresh_from_db()
    assert email.status == EmailStatus.PENDING_REVIEW


def test_another_tenants_email_is_not_found(signed_in, other_tenant):
    theirs = make_email(AccountFactory(tenant=other_tenant), status=EmailStatus.PENDING_REVIEW)
    assert signed_in.get(f"/t/alpha/outbox/{theirs.pk}/").status_code == 404
    assert signed_in.post(f"/t/alpha/outbox/{theirs.pk}/decide/", {"action": "skip"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == EmailStatus.PENDING_REVIEW


def test_outbox_query_count_does_not_grow_with_emails(signed_in, tenant, acme):
    make_email(acme)

    def grow():
        for number in range(30):
            account = AccountFactory(tenant=tenant)
            make_email(account, step_run=demo_step_run(account) if number % 3 == 0 else None)

    small, large = same_query_count(signed_in, "/t/alpha/outbox/", grow)
    assert small == large


# Account page


def test_account_page_shows_runs_steps_tasks_alerts_and_emails(signed_in, bob, acme):
    step_run = demo_step_run(acme)
    make_task(acme, bob, "Demo with Uma", timezone.now())
    alert = make_alert(acme, title="Acme logins dropped")
    make_alert(acme, title="Old news", status=AlertStatus.RESOLVED)
    make_email(acme, subject="Your personalised demo", step_run=step_run)
    html = signed_in.get(f"/t/alpha/accounts/{acme.pk}/").content.decode()
    assert "Book a demo" in html and "Schedule a demo: Done" in html
    assert "Demo with Uma" in html and "/complete/" in html
    assert "Acme logins dropped" in html and "Old news" not in html
    assert f"/t/alpha/alerts/{alert.pk}/acknowledge/" in html
    assert "Your personalised demo" in html


def test_acknowledge_from_the_account_page_keeps_its_row_layout(signed_in, acme):
    alert = make_alert(acme)
    response = signed_in.post(
        f"/t/alpha/alerts/{alert.pk}/acknowledge/", {"context": "account"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert "Acknowledged by Alice Admin" in html
    assert f"/t/alpha/accounts/{acme.pk}/" not in html  # no account column on the account's own page


def test_start_a_playbook_by_hand_from_the_account_page(signed_in, tenant, alice, acme, stages):
    ContactFactory(account=acme, email="uma@acme.example")
    (playbook,) = playbook_templates_install(tenant=tenant, keys=["onboarding_welcome"])
    url = f"/t/alpha/accounts/{acme.pk}/playbooks/start/"
    response = signed_in.post(url, {"playbook": playbook.pk}, follow=True)
    assert f"Started {playbook.name} for Acme Rockets." in response.content.decode()
    run = Run.objects.for_tenant(tenant).get(account=acme)
    assert (run.playbook, run.status, run.started_by) == (playbook, RunStatus.ACTIVE, alice)
    again = signed_in.post(url, {"playbook": playbook.pk}, follow=True)
    assert "was not started" in again.content.decode()
    assert Run.objects.for_tenant(tenant).filter(account=acme).count() == 1


def test_add_a_task_once_even_when_the_form_is_sent_twice(signed_in, tenant, bob, acme):
    form = {
        "title": "Send the security questionnaire",
        "due": "2030-01-15",
        "owner": "",
        "token": "5d1f2a8e-0f3c-4b9a-9e6e-2f1d0c3b4a59",
    }
    signed_in.post(f"/t/alpha/accounts/{acme.pk}/tasks/", form)
    response = signed_in.post(f"/t/alpha/accounts/{acme.pk}/tasks/", form, follow=True)
    assert "Task added: Send the security questionnaire" in response.content.decode()
    (task,) = Task.objects.for_tenant(tenant).filter(account=acme)
    assert task.owner == bob  # the account's owner when none is chosen
    assert task.due_at.astimezone(tenant_zone(tenant)).date() == dt.date(2030, 1, 15)
    refused = signed_in.post(f"/t/alpha/accounts/{acme.pk}/tasks/", {**form, "title": ""}, follow=True)
    assert "The task was not added. Title: This field is required." in refused.content.decode()


def started_run(client, tenant, acme):
    ContactFactory(account=acme, email="uma@acme.example")
    (playbook,) = playbook_templates_install(tenant=tenant, keys=["onboarding_welcome"])
    client.post(f"/t/alpha/accounts/{acme.pk}/playbooks/start/", {"playbook": playbook.pk})
    return Run.objects.for_tenant(tenant).get(account=acme)


def test_a_csm_stops_a_running_playbook_from_the_account_page_and_its_pending_steps_are_skipped(
    signed_in, tenant, alice, acme, stages
):
    run = started_run(signed_in, tenant, acme)
    html = signed_in.get(f"/t/alpha/accounts/{acme.pk}/").content.decode()
    assert f"/t/alpha/accounts/{acme.pk}/playbooks/runs/{run.pk}/cancel/" in html

    url = f"/t/alpha/accounts/{acme.pk}/playbooks/runs/{run.pk}/cancel/"
    response = signed_in.post(url, {"reason": "The customer asked for no more emails"}, follow=True)

    html = response.content.decode()
    assert f"Stopped {run.playbook.name} for Acme Rockets." in html
    assert "Cancelled by hand: The customer asked for no more emails" in html
    stored = Run.objects.for_tenant(tenant).get(pk=run.pk)
    assert stored.status == RunStatus.CANCELLED
    assert not StepRun.objects.for_tenant(tenant).filter(run=run, status="pending").exists()
    again = signed_in.post(url, follow=True).content.decode()
    assert "was not stopped: The run is already cancelled." in again


def test_a_run_is_stopped_only_under_its_own_account_by_an_editor_of_its_tenant(
    signed_in, client, viv, tenant, other_tenant, acme, globex, stages
):
    run = started_run(signed_in, tenant, acme)
    assert signed_in.post(f"/t/alpha/accounts/{globex.pk}/playbooks/runs/{run.pk}/cancel/").status_code == 404
    client.force_login(viv)
    assert client.post(f"/t/alpha/accounts/{acme.pk}/playbooks/runs/{run.pk}/cancel/").status_code == 403
    assert Run.objects.for_tenant(tenant).get(pk=run.pk).status == RunStatus.ACTIVE


def test_a_viewer_cannot_start_playbooks_or_add_tasks(as_viv, tenant, acme, stages):
    (playbook,) = playbook_templates_install(tenant=tenant, keys=["onboarding_welcome"])
    html = as_viv.get(f"/t/alpha/accounts/{acme.pk}/").content.decode()
    assert "Start a playbook by hand" not in html and "Add a task" not in html
    assert as_viv.post(f"/t/alpha/accounts/{acme.pk}/playbooks/start/", {"playbook": playbook.pk}).status_code == 403
    form = {"title": "Sneaky", "token": "5d1f2a8e-0f3c-4b9a-9e6e-2f1d0c3b4a59"}
    assert as_viv.post(f"/t/alpha/accounts/{acme.pk}/tasks/", form).status_code == 403
    assert not Run.objects.for_tenant(tenant).exists() and not Task.objects.for_tenant(tenant).exists()


def test_account_actions_on_another_tenants_account_are_not_found(signed_in, tenant, other_tenant, stages):
    theirs = AccountFactory(tenant=other_tenant)
    (playbook,) = playbook_templates_install(tenant=tenant, keys=["onboarding_welcome"])
    start = signed_in.post(f"/t/alpha/accounts/{theirs.pk}/playbooks/start/", {"playbook": playbook.pk})
    assert start.status_code == 404
    form = {"title": "Sneaky", "token": "5d1f2a8e-0f3c-4b9a-9e6e-2f1d0c3b4a59"}
    assert signed_in.post(f"/t/alpha/accounts/{theirs.pk}/tasks/", form).status_code == 404
    assert not Task.objects.dangerously_all_tenants().exists()


def test_account_page_query_count_does_not_grow_with_runs_tasks_alerts_and_emails(signed_in, bob, acme):
    step_run = demo_step_run(acme)
    make_task(acme, bob, "First", None)
    make_alert(acme)
    make_email(acme, step_run=step_run)

    def grow():
        for number in range(8):
            step_run = demo_step_run(acme)
            make_task(acme, bob, f"Task {number}", timezone.now())
            make_alert(acme, title=f"Alert {number}")
            make_email(acme, step_run=step_run)

    small, large = same_query_count(signed_in, f"/t/alpha/accounts/{acme.pk}/", grow)
    assert small == large


def test_a_csm_completes_the_ticked_tasks_at_once_and_is_told_of_those_done_already(as_bob, tenant, bob, acme):
    first, second = make_task(acme, bob, "Kickoff call", None), make_task(acme, bob, "Send the deck", None)
    done = make_task(acme, bob, "Done already", None)
    Task.objects.for_tenant(tenant).filter(pk=done.pk).update(completed_at=timezone.now())
    page = as_bob.get("/t/alpha/tasks/").content.decode()
    assert f'name="task" value="{first.pk}" form="tasks-bulk"' in page and "Complete selected" in page

    response = as_bob.post("/t/alpha/tasks/complete/", {"task": [first.pk, second.pk, done.pk]}, follow=True)

    assert "Completed 2 of the 3 tasks selected; the rest were done already." in response.content.decode()
    completed = Task.objects.for_tenant(tenant).filter(pk__in=[first.pk, second.pk], completed_by=bob)
    assert completed.count() == 2


def test_bulk_completion_wants_tasks_refuses_viewers_and_never_reaches_another_tenant(
    as_bob, client, viv, bob, acme, other_tenant
):
    theirs = make_task(AccountFactory(tenant=other_tenant), None, "Theirs", None)
    assert "Select the tasks first." in as_bob.post("/t/alpha/tasks/complete/", follow=True).content.decode()
    as_bob.post("/t/alpha/tasks/complete/", {"task": [theirs.pk]})
    client.force_login(viv)
    ours = make_task(acme, bob, "Ours", None)
    assert client.post("/t/alpha/tasks/complete/", {"task": [ours.pk]}).status_code == 403
    assert not Task.objects.dangerously_all_tenants().filter(completed_at__isnull=False).exists()


def test_an_alert_is_followed_up_with_a_task_for_the_accounts_owner_and_acknowledged(as_bob, tenant, bob, acme):
    alert = make_alert(acme, title="Logins dropped")
    html = as_bob.get("/t/alpha/alerts/").content.decode()
    assert f'action="/t/alpha/alerts/{alert.pk}/task/"' in html and 'value="Follow up: Logins dropped"' in html

    response = as_bob.post(
        f"/t/alpha/alerts/{alert.pk}/task/",
        {"title": "Call the champion about logins", "due": "", "token": "00000000-0000-4000-8000-000000000009"},
        HTTP_HX_REQUEST="true",
    )
    again = as_bob.post(
        f"/t/alpha/alerts/{alert.pk}/task/",
        {"title": "Call the champion about logins", "token": "00000000-0000-4000-8000-000000000009"},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200 and "Task added." in response.content.decode()
    assert again.status_code == 200
    (task,) = Task.objects.for_tenant(tenant).filter(account=acme)
    assert (task.title, task.owner, task.source) == ("Call the champion about logins", bob, f"alert:{alert.pk}")
    stored = Alert.objects.for_tenant(tenant).get(pk=alert.pk)
    assert (stored.status, stored.note) == (AlertStatus.ACKNOWLEDGED, "Follow-up task: Call the champion about logins")


def test_an_alert_task_without_a_title_is_refused_in_the_row_and_viewers_cannot_add_one(as_bob, client, viv, acme):
    alert = make_alert(acme)
    token = "00000000-0000-4000-8000-000000000010"

    refused = as_bob.post(f"/t/alpha/alerts/{alert.pk}/task/", {"title": "", "token": token}, HTTP_HX_REQUEST="true")
    client.force_login(viv)
    viewer = client.post(f"/t/alpha/alerts/{alert.pk}/task/", {"title": "Sneaky", "token": token})

    assert refused.status_code == 400 and "Name the task." in refused.content.decode()
    assert viewer.status_code == 403
    assert not Task.objects.for_tenant(acme.tenant).exists()
