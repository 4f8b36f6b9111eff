"""A member with a time zone of their own reads the pages in it: times shown, "today", and the days they type."""

import csv
import datetime as dt
import io
import uuid
import zoneinfo

import pytest
import time_machine

from csplatform.tenancy.models import Membership
from health.models import HealthScore
from playbooks.models import Task

from ..factories import AccountFactory, UsageEventFactory
from .test_alerts_tasks_outbox import make_task
from .test_nav_counts import nav_counts

pytestmark = pytest.mark.django_db
TOKYO = zoneinfo.ZoneInfo("Asia/Tokyo")
# Monday evening in the tenant's zone (UTC) is already Tuesday morning in Tokyo.
NOW = dt.datetime(2026, 12, 7, 20, 0, tzinfo=dt.UTC)


@pytest.fixture
def bob_in_tokyo(tenant, bob):
    Membership.objects.for_tenant(tenant).filter(user=bob).update(timezone="Asia/Tokyo")
    return bob


@pytest.fixture
def two_tasks(tenant, alice, bob):
    """For alice and bob each: one task due Monday 10:00 UTC, one due Tuesday 10:00 UTC."""
    tenant.timezone = "UTC"
    tenant.save()
    for owner in (alice, bob):
        account = AccountFactory(tenant=tenant, owner=owner)
        make_task(account, owner, "Monday call", dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC))
        make_task(account, owner, "Tuesday review", dt.datetime(2026, 12, 8, 10, 0, tzinfo=dt.UTC))


def task_groups(client):
    html = client.get("/t/alpha/tasks/").content.decode()
    marks = ['id="tasks-overdue"', 'id="tasks-today"', 'id="tasks-upcoming"']
    parts = [html[html.index(mark) : html.index(end)] for mark, end in zip(marks, [*marks[1:], "</main>"])]
    return [[title for title in ("Monday call", "Tuesday review") if title in part] for part in parts]


@time_machine.travel(NOW, tick=False)
def test_due_today_is_the_readers_today_in_their_own_zone(client, bob_in_tokyo, alice, two_tasks):
    client.force_login(alice)
    assert task_groups(client) == [[], ["Monday call"], ["Tuesday review"]]
    assert nav_counts(client, alice.memberships.get().tenant)["My tasks"] == "1"

    client.force_login(bob_in_tokyo)
    assert task_groups(client) == [["Monday call"], ["Tuesday review"], []]
    assert nav_counts(client, bob_in_tokyo.memberships.get().tenant)["My tasks"] == "2"


@time_machine.travel(NOW, tick=False)
def test_times_show_in_the_readers_zone(client, bob_in_tokyo, two_tasks):
    client.force_login(bob_in_tokyo)

    html = client.get("/t/alpha/tasks/").content.decode()

    # Tuesday 10:00 UTC is 19:00 in Tokyo.
    assert "Tue Dec 8, 19:00" in html


@time_machine.travel(NOW, tick=False)
def test_a_task_due_on_a_day_is_due_at_17_00_of_that_day_where_its_author_is(client, tenant, bob_in_tokyo):
    account = AccountFactory(tenant=tenant, owner=bob_in_tokyo)
    client.force_login(bob_in_tokyo)

    client.post(
        f"/t/alpha/accounts/{account.pk}/tasks/", {"title": "Renewal prep", "due": "2026-12-10", "token": str(uuid.uuid4())}
    )

    task = Task.objects.for_tenant(tenant).get(title="Renewal prep")
    assert task.due_at == dt.datetime(2026, 12, 10, 17, 0, tzinfo=TOKYO)


@time_machine.travel(NOW, tick=False)
def test_a_health_override_ends_at_the_start_of_the_chosen_day_where_its_author_is(client, tenant, bob_in_tokyo):
    account = AccountFactory(tenant=tenant, owner=bob_in_tokyo)
    client.force_login(bob_in_tokyo)

    # Tuesday is today in Tokyo already, so it is not a day after today there.
    too_soon = client.post(
        f"/t/alpha/accounts/{account.pk}/health/",
        {"override-score": "80", "override-reason": "Signed", "override-expires_on": "2026-12-08"},
    )
    assert too_soon.status_code == 400 and "Pick a day after today." in too_soon.content.decode()

    client.post(
        f"/t/alpha/accounts/{account.pk}/health/",
        {"override-score": "80", "override-reason": "Signed", "override-expires_on": "2026-12-10"},
    )
    health = HealthScore.objects.for_tenant(tenant).get(account=account)
    assert health.override_expires_at == dt.datetime(2026, 12, 10, tzinfo=TOKYO)


def test_the_csv_file_gives_times_in_the_readers_zone_and_names_it(client, tenant, bob_in_tokyo):
    account = AccountFactory(tenant=tenant, owner=bob_in_tokyo)
    UsageEventFactory(account=account, timestamp=dt.datetime(2026, 12, 1, 9, 5, tzinfo=dt.UTC))
    client.force_login(bob_in_tokyo)

    response = client.get("/t/alpha/accounts.csv")
    [row] = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig")))

    assert row["Last activity (Asia/Tokyo)"] == "2026-12-01 18:05"
