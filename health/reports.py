"""The reports page's figures, each over every account (`accounts` None) or over a queryset of them, with the
chart that draws it. Each reads its figures in a fixed number of queries, whatever the number of accounts."""

import datetime as dt
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.db.models.functions import Abs

from csplatform.customers.models import AccountChange
from csplatform.tenancy.timezones import by_month, day_start, month_starts
from lifecycle.selectors import (
    departures_since,
    kpi_accounts_per_stage,
    kpi_conversion,
    kpi_departures,
    kpi_time_to_onboard,
)

from .analysis import owner_books
from .models import HealthSnapshot

REPORT_DAYS = 90
RENEWAL_WINDOWS = ((0, 30), (31, 60), (61, 90))
COLOUR_KEYS = ("green", "yellow", "red", "unscored")
COLOUR_NAMES = {"green": "Green", "yellow": "Yellow", "red": "Red", "unscored": "Not scored"}
# Chart colours; the legend and the table under each chart carry the same words.
COLOUR_HEX = {"green": "#1a7f37", "yellow": "#b88400", "red": "#c62828", "unscored": "#8a94a6"}
ACCENT = "#2456c7"
# The months that the month-by-month reports show, this one included.
REPORT_MONTHS = 3
LARGEST_MRR_CHANGES = 10
LATEST_DEPARTURES = 20


def bar_chart(labels, datasets, *, stacked=False, horizontal=False, y_title=""):
    options = {"scales": {"x": {"stacked": stacked}, "y": {"stacked": stacked, "beginAtZero": True}}}
    value_axis = "x" if horizontal else "y"
    options["scales"][value_axis]["title"] = {"display": bool(y_title), "text": y_title}
    options["scales"][value_axis]["ticks"] = {"precision": 0}
    if horizontal:
        options["indexAxis"] = "y"
    return {"type": "bar", "data": {"labels": labels, "datasets": datasets}, "options": options}


def colour_datasets(rows_by_colour):
    return [
        {"label": COLOUR_NAMES[key], "data": rows_by_colour[key], "backgroundColor": COLOUR_HEX[key]}
        for key in COLOUR_KEYS
    ]


def onboarding(tenant, accounts):
    result = kpi_time_to_onboard(tenant=tenant, accounts=accounts)
    cohorts = result["cohorts"]
    chart = bar_chart(
        [row["cohort"] for row in cohorts],
        [
            {
                "label": "Median days to onboard",
                "data": [row["median_days"] for row in cohorts],
                "backgroundColor": ACCENT,
            }
        ],
        y_title="Days",
    )
    finished = any(row["accounts"] for row in cohorts)
    return {"stage": result["stage"], "rows": cohorts, "chart": chart, "finished": finished}


def funnel(tenant, accounts):
    per_stage = kpi_accounts_per_stage(tenant=tenant, accounts=accounts)
    conversion = {row["from_stage"]: row for row in kpi_conversion(tenant=tenant, accounts=accounts)}
    rows = [{**row, "conversion": conversion.get(row["stage"])} for row in per_stage]
    chart = bar_chart(
        [row["name"] for row in rows],
        [{"label": "Accounts now", "data": [row["accounts"] for row in rows], "backgroundColor": ACCENT}],
        horizontal=True,
        y_title="Accounts",
    )
    return {"rows": rows, "chart": chart}


def health_over_time(tenant, accounts, today):
    """Accounts per colour on each day that has snapshots (one grouped query)."""
    first_day = today - dt.timedelta(days=REPORT_DAYS - 1)
    counts = {}
    snapshots = HealthSnapshot.objects.for_tenant(tenant)
    if accounts is not None:
        snapshots = snapshots.filter(account_id__in=accounts.values("pk"))
    rows = (
        snapshots.filter(day__gte=first_day, day__lte=today)
        .values("day", "colour")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in rows:
        counts.setdefault(row["day"], dict.fromkeys(COLOUR_KEYS, 0))[row["colour"] or "unscored"] += row["n"]
    days = sorted(counts)
    table = [{"day": day, "counts": [counts[day][key] for key in COLOUR_KEYS]} for day in days]
    chart = bar_chart(
        [day.strftime("%b %-d") for day in days],
        colour_datasets({key: [counts[day][key] for day in days] for key in COLOUR_KEYS}),
        stacked=True,
        y_title="Accounts",
    )
    return {"rows": table, "chart": chart, "days": REPORT_DAYS}


def renewals(accounts, today):
    """Accounts renewing in the next 90 days, by window and visible colour, with their MRR (one query); a customer
    who left renews nothing."""
    rows = (
        accounts.still_customers()
        .filter(renewal_date__gte=today, renewal_date__lte=today + dt.timedelta(days=RENEWAL_WINDOWS[-1][1]))
        .values("renewal_date", "health__colour")
        .annotate(n=Count("pk"), mrr=Sum("mrr"))
        .order_by()
    )
    windows = [
        {"label": f"{start}–{end} days", "counts": dict.fromkeys(COLOUR_KEYS, 0), "mrr": 0}
        for start, end in RENEWAL_WINDOWS
    ]
    for row in rows:
        days = (row["renewal_date"] - today).days
        window = next(w for w, (start, end) in zip(windows, RENEWAL_WINDOWS) if start <= days <= end)
        window["counts"][row["health__colour"] or "unscored"] += row["n"]
        window["mrr"] += row["mrr"] or 0
    for window in windows:
        window["cells"] = [window["counts"][key] for key in COLOUR_KEYS]
    chart = bar_chart(
        [window["label"] for window in windows],
        colour_datasets({key: [window["counts"][key] for window in windows] for key in COLOUR_KEYS}),
        stacked=True,
        y_title="Accounts",
    )
    return {"rows": windows, "chart": chart, "accounts": sum(sum(window["cells"]) for window in windows)}


def owners(accounts, today):
    """`owner_books` with a row of cells per owner and their chart."""
    books = owner_books(accounts, today)
    for book in books:
        book["cells"] = [book[key] for key in COLOUR_KEYS]
    chart = bar_chart(
        [book["name"] for book in books],
        colour_datasets({key: [book[key] for book in books] for key in COLOUR_KEYS}),
        stacked=True,
        horizontal=True,
        y_title="Accounts",
    )
    return {"rows": books, "chart": chart}


def mrr_by_stage(accounts, stages):
    totals = {
        row["lifecycle__stage_id"]: row
        for row in accounts.values("lifecycle__stage_id")
        .annotate(mrr=Sum("mrr"), n=Count("pk"))
        .order_by()
    }
    rows = []
    for stage in stages:
        total = totals.get(stage.pk, {})
        rows.append({"name": stage.name, "accounts": total.get("n", 0), "mrr": total.get("mrr") or 0})
    if None in totals:
        rows.append({"name": "No stage yet", "accounts": totals[None]["n"], "mrr": totals[None]["mrr"] or 0})
    chart = bar_chart(
        [row["name"] for row in rows],
        [{"label": "MRR", "data": [float(row["mrr"]) for row in rows], "backgroundColor": ACCENT}],
        y_title="MRR",
    )
    return {"rows": rows, "chart": chart}


def mrr_movements(tenant, accounts, today):
    """The MRR that accounts gained and lost in each of the last REPORT_MONTHS months, this one included, from the
    recorded changes of their MRR (through the API, imports or by hand), and the largest of those changes.

    Two queries whatever the number of changes: the months' sums, and the largest changes.
    """
    months = month_starts(today, REPORT_MONTHS)
    changes = (
        AccountChange.objects.for_tenant(tenant)
        .filter(fields__has_key="mrr", at__gte=day_start(tenant, months[0]))
        .annotate(delta=AccountChange.recorded_mrr(1) - AccountChange.recorded_mrr(0))
    )
    if accounts is not None:
        changes = changes.filter(account__in=accounts)
    sums = by_month(
        tenant,
        changes,
        gained=Sum("delta", filter=Q(delta__gt=0)),
        lost=Sum("delta", filter=Q(delta__lt=0)),
        expanded=Count("account", distinct=True, filter=Q(delta__gt=0)),
        contracted=Count("account", distinct=True, filter=Q(delta__lt=0)),
    )
    rows = []
    for first in months:
        found = sums.get(first, {})
        gained, lost = found.get("gained") or 0, found.get("lost") or 0
        rows.append({"month": first, "gained": gained, "lost": lost, "net": gained + lost,
                     "expanded": found.get("expanded", 0), "contracted": found.get("contracted", 0)})
    biggest = changes.annotate(size=Abs("delta")).select_related("account").order_by("-size", "-at", "-pk")
    largest = [
        {"change": change, "old": Decimal(change.fields["mrr"][0]), "new": Decimal(change.fields["mrr"][1])}
        for change in biggest[:LARGEST_MRR_CHANGES]
    ]

    def dataset(label, key, colour):
        return {"label": label, "data": [float(row[key]) for row in rows], "backgroundColor": COLOUR_HEX[colour]}

    chart = bar_chart(
        [row["month"].strftime("%B %Y") for row in rows],
        [dataset("Expansion", "gained", "green"), dataset("Contraction", "lost", "red")],
        stacked=True,
        y_title="MRR",
    )
    return {"rows": rows, "largest": largest, "chart": chart, "any": bool(largest)}


def departures(tenant, accounts, today):
    """The customers who left in each of the last REPORT_MONTHS months (lifecycle's `kpi_departures`), with
    the latest to leave: five queries whatever the number of accounts."""
    months = month_starts(today, REPORT_MONTHS)
    figures = kpi_departures(tenant=tenant, months=months, accounts=accounts)
    latest = (
        departures_since(tenant=tenant, since=day_start(tenant, months[0]), accounts=accounts)
        .select_related("account", "to_stage", "by_user")
        .order_by("-at", "-pk")
    )
    rows = figures["months"]
    chart = bar_chart(
        [row["month"].strftime("%B %Y") for row in rows],
        [{"label": "Customers who left", "data": [row["left"] for row in rows], "backgroundColor": COLOUR_HEX["red"]}],
        y_title="Customers",
    )
    return {
        "rows": rows,
        "reasons": figures["reasons"],
        "latest": list(latest[:LATEST_DEPARTURES]),
        "chart": chart,
        "any": any(row["left"] for row in rows),
    }
