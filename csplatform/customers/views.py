"""Building blocks of the pages that show accounts.

The dashboard pages themselves live in the highest app whose data they show
(health.views for the portfolio and the account page, lifecycle.views for
the board), since a lower app never imports a higher one. These helpers read
only customer data.
"""

import datetime as dt

from django.db.models import OuterRef, Subquery, Sum

from .models import Contact, DailyRollup, UsageEvent

RECENT_EVENTS = 25
ACTIVITY_DAYS = 30


def with_last_activity(accounts, tenant):
    """Annotate each account with its latest event time.

    A correlated subquery that reads one row of the (tenant, account,
    -timestamp) index per account, so the page stays one query.
    """
    latest = (
        UsageEvent.objects.for_tenant(tenant)
        .filter(account=OuterRef("pk"))
        .order_by("-timestamp")
        .values("timestamp")[:1]
    )
    return accounts.annotate(last_activity=Subquery(latest))


def sort_headers(columns, current):
    """Each column's header link target and aria-sort state; `columns` are (key, label, descending first)."""
    headers = []
    for key, label, descending_first in columns:
        if current == key:
            state, next_sort = "ascending", f"-{key}"
        elif current == f"-{key}":
            state, next_sort = "descending", key
        else:
            state, next_sort = None, f"-{key}" if descending_first else key
        headers.append({"key": key, "label": label, "state": state, "next_sort": next_sort})
    return headers


def usage_per_day(tenant, account, today, days=ACTIVITY_DAYS):
    """Events and distinct active contacts per day for the last `days` days, oldest first (one query)."""
    first_day = today - dt.timedelta(days=days - 1)
    rows = (
        DailyRollup.objects.for_tenant(tenant)
        .filter(account=account, day__gte=first_day, day__lte=today)
        .values("day", "contact_ref")
        .annotate(total=Sum("count"))
        .order_by()
    )
    events, contacts = {}, {}
    for row in rows:
        events[row["day"]] = events.get(row["day"], 0) + row["total"]
        if row["contact_ref"]:
            contacts[row["day"]] = contacts.get(row["day"], 0) + 1
    result = []
    for offset in range(days):
        day = first_day + dt.timedelta(days=offset)
        result.append({"day": day, "events": events.get(day, 0), "active_contacts": contacts.get(day, 0)})
    return result


def account_contacts(tenant, account):
    return Contact.objects.for_tenant(tenant).filter(account=account).order_by("role", "name", "id")


def recent_events(tenant, account, limit=RECENT_EVENTS):
    return (
        UsageEvent.objects.for_tenant(tenant)
        .filter(account=account)
        .select_related("contact")
        .order_by("-timestamp")[:limit]
    )
