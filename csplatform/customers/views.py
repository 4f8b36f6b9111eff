import datetime as dt

from django.core.paginator import Paginator
from django.db.models import OuterRef, Subquery, Sum
from django.shortcuts import get_object_or_404, render

from csplatform.tenancy.decorators import tenant_page
from csplatform.tenancy.timezones import tenant_today

from .filtersets import AccountFilterSet
from .models import Account, Contact, DailyRollup, UsageEvent

PORTFOLIO_PAGE_SIZE = 25
RECENT_EVENTS = 25
ACTIVITY_DAYS = 30

# (sort key, header, whether the first click sorts high-to-low)
PORTFOLIO_COLUMNS = [
    ("name", "Account", False),
    ("plan", "Plan", False),
    ("mrr", "MRR", True),
    ("owner", "Owner", False),
    ("renewal", "Renewal", False),
    ("trial_end", "Trial ends", False),
    ("activity", "Last activity", True),
]
FILTER_PARAMS = ("q", "plan", "owner", "renewal")


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


def sort_headers(current):
    """Each column's header link target and its aria-sort state for the current sort."""
    headers = []
    for key, label, descending_first in PORTFOLIO_COLUMNS:
        if current == key:
            state, next_sort = "ascending", f"-{key}"
        elif current == f"-{key}":
            state, next_sort = "descending", key
        else:
            state, next_sort = None, f"-{key}" if descending_first else key
        headers.append({"key": key, "label": label, "state": state, "next_sort": next_sort})
    return headers


@tenant_page
def portfolio(request):
    tenant = request.tenant
    accounts = with_last_activity(Account.objects.for_tenant(tenant).select_related("owner"), tenant)
    filterset = AccountFilterSet(
        request.GET, accounts, tenant=tenant, user=request.user, today=tenant_today(tenant)
    )
    page = Paginator(filterset.qs, PORTFOLIO_PAGE_SIZE).get_page(request.GET.get("page"))
    filters_active = any(request.GET.get(name) for name in FILTER_PARAMS)
    context = {
        "filterset": filterset,
        "page": page,
        "headers": sort_headers(request.GET.get("sort", "")),
        "sort": request.GET.get("sort", ""),
        "scope": request.GET.get("scope") or "all",
        "filters_active": filters_active,
    }
    return render(request, "customers/portfolio.html", context)


def events_per_day(tenant, account, today):
    """Rows of (day, counts per event name, total) for the last ACTIVITY_DAYS days, newest first."""
    first_day = today - dt.timedelta(days=ACTIVITY_DAYS - 1)
    totals = (
        DailyRollup.objects.for_tenant(tenant)
        .filter(account=account, day__gte=first_day, day__lte=today)
        .values("day", "event")
        .annotate(total=Sum("count"))
        .order_by()
    )
    counts = {(row["day"], row["event"]): row["total"] for row in totals}
    event_names = sorted({event for _, event in counts})
    rows = []
    for offset in range(ACTIVITY_DAYS):
        day = today - dt.timedelta(days=offset)
        day_counts = [counts.get((day, name), 0) for name in event_names]
        rows.append({"day": day, "counts": day_counts, "total": sum(day_counts)})
    return event_names, rows


@tenant_page
def account_detail(request, account_id):
    tenant = request.tenant
    account = get_object_or_404(Account.objects.for_tenant(tenant).select_related("owner"), pk=account_id)
    contacts = Contact.objects.for_tenant(tenant).filter(account=account).order_by("role", "name", "id")
    events = (
        UsageEvent.objects.for_tenant(tenant)
        .filter(account=account)
        .select_related("contact")
        .order_by("-timestamp")[:RECENT_EVENTS]
    )
    event_names, activity_rows = events_per_day(tenant, account, tenant_today(tenant))
    context = {
        "account": account,
        "contacts": contacts,
        "events": events,
        "event_names": event_names,
        "activity_rows": activity_rows,
        "activity_days": ACTIVITY_DAYS,
    }
    return render(request, "customers/account_detail.html", context)
