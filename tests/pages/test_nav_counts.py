"""The main navigation counts a member's open alerts and the tasks due by the end of their day."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.models import AlertStatus

from ..factories import AccountFactory
from .test_alerts_tasks_outbox import make_alert, make_task

pytestmark = pytest.mark.django_db


def nav_counts(client, tenant):
    """{link text: count} of the navigation on the portfolio page."""
    html = client.get(f"/t/{tenant.slug}/").content.decode()
    nav = html[html.index('<nav class="site-nav"') : html.index("</nav>")]
    found = re.findall(r'>([A-Za-z ]+) <span class="nav-count">([0-9+]+)<', nav)
    return {label.strip(): count for label, count in found}


def test_a_csm_sees_the_open_alerts_of_their_accounts_and_their_tasks_due(client, tenant, bob, alice):
    mine, theirs = AccountFactory(tenant=tenant, owner=bob), AccountFactory(tenant=tenant, owner=alice)
    make_alert(mine)
    make_alert(mine, title="Card expires")
    make_alert(mine, title="Settled", status=AlertStatus.RESOLVED)
    make_alert(theirs)
    now = timezone.now()
    make_task(mine, bob, "Overdue call", now - dt.timedelta(days=2))
    make_task(mine, bob, "Next month", now + dt.timedelta(days=30))
    make_task(mine, alice, "Not Bob's", now - dt.timedelta(days=1))
    client.force_login(bob)

    assert nav_counts(client, tenant) == {"Alerts": "2", "My tasks": "1"}


def test_an_admin_counts_every_open_alert_of_the_tenant(client, tenant, bob, alice):
    make_alert(AccountFactory(tenant=tenant, owner=bob))
    make_alert(AccountFactory(tenant=tenant, owner=alice))
    client.force_login(alice)

    assert nav_counts(client, tenant) == {"Alerts": "2"}


def test_another_tenants_alerts_are_never_counted(client, tenant, other_tenant, alice):
    make_alert(AccountFactory(tenant=other_tenant))
    client.force_login(alice)

    assert nav_counts(client, tenant) == {}


def test_a_long_list_shows_as_99_plus(client, tenant, alice):
    for number in range(100):
        make_alert(AccountFactory(tenant=tenant, owner=alice), title=f"Alert {number}")
    client.force_login(alice)

    assert nav_counts(client, tenant)["Alerts"] == "99+"


def test_both_counts_are_read_in_one_query_on_every_page(client, tenant, bob, alice):
    account = AccountFactory(tenant=tenant, owner=bob)
    make_alert(account)
    make_task(account, bob, "Overdue call", timezone.now() - dt.timedelta(days=1))
    client.force_login(bob)
    client.get(f"/t/{tenant.slug}/tasks/")

    with CaptureQueriesContext(connection) as queries:
        client.get(f"/t/{tenant.slug}/tasks/")

    assert sum(1 for query in queries.captured_queries if "COUNT(*)" in query["sql"]) == 1
