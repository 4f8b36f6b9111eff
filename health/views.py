"""The health pages and the parts of the dashboard pages that health owns: the sparklines, the whole-portfolio
figures, the portfolio's rows, the account page's health card, and the reports.

The pages that bring every app's data together (the portfolio, the account
page) are csplatform.dashboard, above the apps.
"""

import datetime as dt
from decimal import Decimal

from django.db.models import Count, DateField, DecimalField, Q, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Abs, Cast, TruncMonth
from django.shortcuts import render

from csplatform.customers.models import Account, AccountChange
from csplatform.customers.views import with_last_activity
from csplatform.tenancy.decorators import tenant_page
from csplatform.tenancy.models import User
from csplatform.tenancy.timezones import day_start, tenant_today, tenant_zone
from lifecycle.selectors import kpi_accounts_per_stage, kpi_conversion, kpi_time_to_onboard, stages_in_order
from lifecycle.sla import days_in_stage_expression

from .analysis import health_why
from .forms import HealthOverrideForm, ReportScopeForm
from .models import HealthSnapshot

SPARK_DAYS = 30
TREND_DAYS = 90
REPORT_DAYS = 90
RENEWAL_WINDOWS = ((0, 30), (31, 60), (61, 90))
COLOUR_KEYS = ("green", "yellow", "red", "unscored")
COLOUR_NAMES = {"green": "Green", "yellow": "Yellow", "red": "Red", "unscored": "Not scored"}
# Chart colours; the legend and the table under each chart carry the same words.
COLOUR_HEX = {"green": "#1a7f37", "yellow": "#b88400", "red": "#c62828", "unscored": "#8a94a6"}
ACCENT = "#2456c7"
MRR_MONTHS = 3
LARGEST_MRR_CHANGES = 10


def sparkline(scores, first_day, days, *, width=96, height=24, pad=2):
    """Polyline points of daily scores (0-100) of the `days` days from `first_day`, or None under two points.

    Drawn on the server as inline SVG: no script, and the label says in words what the line shows.
    """
    points = sorted((day, score) for day, score in scores.items() if day >= first_day and score is not None)
    if len(points) < 2:
        return None
    # The line spans the history there is, so a young account's line is not squeezed into a corner.
    start = points[0][0]
    step = width / max((first_day + dt.timedelta(days=days - 1) - start).days, 1)
    coords = [
        (round((day - start).days * step, 1), round(pad + (100 - score) / 100 * (height - 2 * pad), 1))
        for day, score in points
    ]
    first, last = points[0], points[-1]
    return {
        "width": width,
        "height": height,
        "points": " ".join(f"{x},{y}" for x, y in coords),
        "end": coords[-1],
        "label": f"Health from {first[1]:.0f} on {first[0]:%b %-d} to {last[1]:.0f} on {last[0]:%b %-d}",
    }


def snapshot_scores(tenant, account_ids, first_day, today):
    """{account id: {day: score}} of the computed daily snapshots in the window (one query)."""
    scores = {}
    rows = (
        HealthSnapshot.objects.for_tenant(tenant)
        .filter(account_id__in=account_ids, day__gte=first_day, day__lte=today)
        .values_list("account_id", "day", "score")
        .order_by()
    )
    for account_id, day, score in rows:
        scores.setdefault(account_id, {})[day] = score
    return scores


def portfolio_figures(tenant):
    """Accounts per stage and per visible colour over the whole portfolio, and the plans in use.

    Whole-tenant figures: one query each, computed at most once a minute (see tenancy.summaries).
    """
    by_stage, by_colour = {}, dict.fromkeys(COLOUR_KEYS, 0)
    rows = Account.objects.for_tenant(tenant).values("lifecycle__stage_id", "health__colour").annotate(n=Count("pk"))
    for row in rows.order_by():
        by_stage[row["lifecycle__stage_id"]] = by_stage.get(row["lifecycle__stage_id"], 0) + row["n"]
        by_colour[row["health__colour"] or "unscored"] += row["n"]
    plans = Account.objects.for_tenant(tenant).exclude(plan="").order_by("plan").values_list("plan", flat=True)
    return {"by_stage": by_stage, "by_colour": by_colour, "plans": list(plans.distinct())}


def portfolio_summary(figures, stages):
    by_stage, by_colour = figures["by_stage"], figures["by_colour"]
    return {
        "stages": [{"stage": stage, "accounts": by_stage.get(stage.pk, 0)} for stage in stages],
        "unstaged": by_stage.get(None, 0),
        "colours": [{"key": key, "name": COLOUR_NAMES[key], "accounts": by_colour[key]} for key in COLOUR_KEYS],
        "total": sum(by_colour.values()),
    }


def portfolio_accounts(tenant):
    """The portfolio's rows: each account with its owner, health, stage, days in stage and last activity."""
    return with_last_activity(
        Account.objects.for_tenant(tenant)
        .select_related("owner", "health", "lifecycle__stage")
        # A row shows the score, not how it was made.
        .defer("health__breakdown")
        .annotate(days_in_stage=days_in_stage_expression(tenant, "lifecycle__")),
        tenant,
    )


def health_context(request, account, today, *, override_form=None):
    """The account's health: current score, breakdown per measure, why it changed and a 90-day trend."""
    tenant = request.tenant
    health = getattr(account, "health", None)
    first_day = today - dt.timedelta(days=TREND_DAYS - 1)
    history = snapshot_scores(tenant, [account.pk], first_day, today).get(account.pk, {})
    breakdown = []
    if health is not None:
        total_weight = sum(entry["weight"] for entry in health.breakdown if not entry["skipped"]) or 1
        for entry in health.breakdown:
            share = 0 if entry["skipped"] else round(100 * entry["weight"] / total_weight)
            breakdown.append({**entry, "share": share})
    return {
        "health": health,
        "override_active": health is not None and health.override_active(),
        "breakdown": breakdown,
        "why": health_why(tenant=tenant, account=account, to_day=today) if health is not None else None,
        "trend": sparkline(history, first_day, TREND_DAYS, width=360, height=80, pad=4),
        "trend_days": TREND_DAYS,
        "override_form": override_form or HealthOverrideForm(),
    }


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


def report_onboarding(tenant, accounts):
    result = kpi_time_to_onboard(tenant=tenant, accounts=accounts)
    cohorts = result["cohorts"]
    chart = bar_chart(
        [row["cohort"] for row in cohorts],
        [{"label": "Median days to onboard", "data": [row["median_days"] for row in cohorts], "backgroundColor": ACCENT}],
        y_title="Days",
    )
    return {"stage": result["stage"], "rows": cohorts, "chart": chart}


def report_funnel(tenant, accounts):
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


def report_health_over_time(tenant, accounts, today):
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


def report_renewals(accounts, today):
    """Accounts renewing in the next 90 days, by window and visible colour, with their MRR (one query)."""
    rows = (
        accounts.filter(renewal_date__gte=today, renewal_date__lte=today + dt.timedelta(days=RENEWAL_WINDOWS[-1][1]))
        .values("renewal_date", "health__colour")
        .annotate(n=Count("pk"), mrr=Sum("mrr"))
        .order_by()
    )
    windows = [
        {"label": f"{start}–{end} days", "counts": dict.fromkeys(COLOUR_KEYS, 0), "mrr": 0} for start, end in RENEWAL_WINDOWS
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


def report_mrr_by_stage(accounts, stages):
    totals = {
        row["lifecycle__stage_id"]: row
        for row in accounts.values("lifecycle__stage_id")
        .annotate(mrr=Sum("mrr"), n=Count("pk"))
        .order_by()
    }
    rows = [
        {"name": stage.name, "accounts": totals.get(stage.pk, {}).get("n", 0), "mrr": totals.get(stage.pk, {}).get("mrr") or 0}
        for stage in stages
    ]
    if None in totals:
        rows.append({"name": "No stage yet", "accounts": totals[None]["n"], "mrr": totals[None]["mrr"] or 0})
    chart = bar_chart(
        [row["name"] for row in rows],
        [{"label": "MRR", "data": [float(row["mrr"]) for row in rows], "backgroundColor": ACCENT}],
        y_title="MRR",
    )
    return {"rows": rows, "chart": chart}


def month_starts(today, count):
    """The first days of the `count` months that end with today's, oldest first."""
    firsts = [today.replace(day=1)]
    while len(firsts) < count:
        firsts.insert(0, (firsts[0] - dt.timedelta(days=1)).replace(day=1))
    return firsts


def _recorded_mrr(position):
    """The MRR before (0) or after (1) a recorded change, from its JSON."""
    return Cast(KT(f"fields__mrr__{position}"), DecimalField(max_digits=14, decimal_places=2))


def report_mrr_movements(tenant, accounts, today):
    """The MRR that accounts gained and lost in each of the last MRR_MONTHS months, this one included, from the
    recorded changes of their MRR (through the API, imports or by hand), and the largest of those changes.

    Two queries whatever the number of changes: the months' sums, and the largest changes.
    """
    months = month_starts(today, MRR_MONTHS)
    changes = (
        AccountChange.objects.for_tenant(tenant)
        .filter(fields__has_key="mrr", at__gte=day_start(tenant, months[0]))
        .annotate(delta=_recorded_mrr(1) - _recorded_mrr(0))
    )
    if accounts is not None:
        changes = changes.filter(account__in=accounts)
    sums = {
        row["month"]: row
        for row in changes.annotate(month=TruncMonth("at", tzinfo=tenant_zone(tenant), output_field=DateField()))
        .values("month")
        .annotate(
            gained=Sum("delta", filter=Q(delta__gt=0)),
            lost=Sum("delta", filter=Q(delta__lt=0)),
            expanded=Count("account", distinct=True, filter=Q(delta__gt=0)),
            contracted=Count("account", distinct=True, filter=Q(delta__lt=0)),
        )
        .order_by()
    }
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


@tenant_page
def reports(request):
    """The lifecycle and health reports over every account, or over a member's (or no one's) accounts.

    An owner that is not a choice is named as an error beside its select, and the reports count everyone's.
    """
    tenant = request.tenant
    today = tenant_today(tenant)
    stages = stages_in_order(tenant=tenant)
    scope = ReportScopeForm(request.GET or None, members=User.objects.members_of(tenant), me=request.user)
    # None: every account, which the stage figures read without narrowing their own queries.
    owned = scope.accounts(tenant)
    accounts = Account.objects.for_tenant(tenant) if owned is None else owned
    context = {"stages": stages, "colour_names": [COLOUR_NAMES[key] for key in COLOUR_KEYS], "scope": scope}
    if stages:
        context.update(
            onboarding=report_onboarding(tenant, owned),
            funnel=report_funnel(tenant, owned),
            health_over_time=report_health_over_time(tenant, owned, today),
            renewals=report_renewals(accounts, today),
            mrr=report_mrr_by_stage(accounts, stages),
            mrr_movements=report_mrr_movements(tenant, owned, today),
        )
    return render(request, "health/reports.html", context)

