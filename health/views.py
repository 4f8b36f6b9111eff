"""The CSM dashboard pages that show health beside stage and usage: portfolio, account page, reports.

They live here, the highest app whose data they read, so that lifecycle and
customers never import upwards. Every page runs a fixed number of queries
whatever the number of accounts.
"""

import datetime as dt

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Sum
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from alerts.views import account_alerts_context
from csplatform.customers.filtersets import AccountFilterSet
from csplatform.customers.models import Account
from csplatform.customers.views import (
    account_notes_context,
    account_owner_context,
    can_assign,
    account_contacts,
    recent_events,
    sort_headers,
    usage_per_day,
    with_last_activity,
)
from csplatform.tenancy.decorators import can_change, forbidden_for_viewers, tenant_page
from csplatform.tenancy.models import User
from csplatform.tenancy.summaries import tenant_summaries_forget, tenant_summary
from csplatform.tenancy.timezones import tenant_today
from lifecycle.selectors import kpi_accounts_per_stage, kpi_conversion, kpi_time_to_onboard, stages_in_order
from lifecycle.sla import days_in_stage_expression
from lifecycle.views import account_lifecycle_context
from playbooks.pages import account_playbooks_context

from .analysis import health_why
from .exports import portfolio_csv_lines
from .forms import HealthOverrideForm
from .models import Colour, HealthSnapshot
from .services import health_override_clear, health_override_set

PORTFOLIO_PAGE_SIZE = 25
SPARK_DAYS = 30
TREND_DAYS = 90
REPORT_DAYS = 90
# The account page lists this many contacts; the API pages through all of them.
CONTACTS_SHOWN = 50
RENEWAL_WINDOWS = ((0, 30), (31, 60), (61, 90))
COLOUR_KEYS = ("green", "yellow", "red", "unscored")
COLOUR_NAMES = {"green": "Green", "yellow": "Yellow", "red": "Red", "unscored": "Not scored"}
# Chart colours; the legend and the table under each chart carry the same words.
COLOUR_HEX = {"green": "#1a7f37", "yellow": "#b88400", "red": "#c62828", "unscored": "#8a94a6"}
ACCENT = "#2456c7"

# (sort key, header, whether the first click sorts high-to-low)
PORTFOLIO_COLUMNS = [
    ("name", "Account", False),
    ("stage", "Stage", False),
    ("days", "Days in stage", True),
    ("health", "Health", False),
    ("delta", "Δ 30 days", False),
    ("mrr", "MRR", True),
    ("renewal", "Renewal", False),
    ("owner", "Owner", False),
    ("activity", "Last activity", True),
]
FILTER_PARAMS = ("q", "stage", "health", "plan", "owner", "renewal")


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


def portfolio_listing(request):
    """What the portfolio page and its CSV file share: the stages, the whole-portfolio figures, the rows'
    queryset and the filterset of the request's filters (its `today` is the tenant's)."""
    tenant = request.tenant
    stages = stages_in_order(tenant=tenant)
    figures = tenant_summary(tenant, "portfolio", lambda: portfolio_figures(tenant))
    accounts = portfolio_accounts(tenant)
    filterset = AccountFilterSet(
        request.GET,
        accounts,
        tenant=tenant,
        user=request.user,
        today=tenant_today(tenant),
        stages=[(stage.key, stage.name) for stage in stages],
        colours=Colour.choices,
        plans=figures["plans"],
    )
    return stages, figures, accounts, filterset


@tenant_page
def portfolio(request):
    tenant = request.tenant
    stages, figures, accounts, filterset = portfolio_listing(request)
    today = filterset.today
    summary = portfolio_summary(figures, stages)
    filters_active = any(request.GET.get(name) for name in FILTER_PARAMS)
    paginator = Paginator(filterset.qs.values_list("pk", flat=True), PORTFOLIO_PAGE_SIZE)
    if not filters_active and request.GET.get("scope") != "mine":
        # Every account is listed: the summary's total spares counting them all again.
        paginator.count = summary["total"]
    page = paginator.get_page(request.GET.get("page"))
    # The page's ids first, then its rows in full: the joins and the last activity are read for these
    # rows only, not for every row a later page skips.
    ids = list(page.object_list)
    rows = {account.pk: account for account in accounts.filter(pk__in=ids)}
    page.object_list = [rows[pk] for pk in ids if pk in rows]
    first_day = today - dt.timedelta(days=SPARK_DAYS - 1)
    scores = snapshot_scores(tenant, [account.pk for account in page], first_day, today)
    for account in page:
        account.spark = sparkline(scores.get(account.pk, {}), first_day, SPARK_DAYS)
    context = {
        "filterset": filterset,
        "page": page,
        "headers": sort_headers(PORTFOLIO_COLUMNS, request.GET.get("sort", "")),
        "sort": request.GET.get("sort", ""),
        "scope": request.GET.get("scope") or "all",
        "filters_active": filters_active,
        "summary": summary,
        "spark_days": SPARK_DAYS,
        "stages": stages,
        "current_stage": request.GET.get("stage", ""),
        "current_health": request.GET.get("health", ""),
        "assign_to": filterset.members if can_assign(request) else None,
    }
    return render(request, "customers/portfolio.html", context)


@tenant_page
def portfolio_export(request):
    """The portfolio's accounts as a CSV file, with the page's filters, scope and sort, every page of them."""
    tenant = request.tenant
    _, _, accounts, filterset = portfolio_listing(request)
    if not filterset.is_valid():
        # A filter the page would show as an error is not left out of the file in silence.
        problems = [f"{name}: {' '.join(errors)}" for name, errors in filterset.errors.items()]
        return HttpResponseBadRequest(
            "\n".join(["The filters are not valid, so nothing was exported.", *problems]) + "\n",
            content_type="text/plain; charset=utf-8",
        )
    ids = list(filterset.qs.values_list("pk", flat=True))
    # One reverse() for the whole file: each row's address is this one with the row's id for the 0.
    account_prefix = request.build_absolute_uri(reverse("account-detail", args=[tenant.slug, 0])).removesuffix("0/")
    response = StreamingHttpResponse(
        portfolio_csv_lines(tenant, accounts, ids, lambda pk: f"{account_prefix}{pk}/"),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{tenant.slug}-accounts-{filterset.today.isoformat()}.csv"'
    return response


def usage_chart(rows):
    """Chart.js config for events per day (bars) and active contacts (line)."""
    return {
        "type": "bar",
        "data": {
            "labels": [row["day"].strftime("%b %-d") for row in rows],
            "datasets": [
                {"label": "Events", "data": [row["events"] for row in rows], "backgroundColor": ACCENT, "yAxisID": "y"},
                {
                    "type": "line",
                    "label": "Active contacts",
                    "data": [row["active_contacts"] for row in rows],
                    "borderColor": "#b35c00",
                    "backgroundColor": "#b35c00",
                    "yAxisID": "contacts",
                },
            ],
        },
        "options": {
            "scales": {
                "y": {"beginAtZero": True, "title": {"display": True, "text": "Events"}},
                "contacts": {
                    "beginAtZero": True,
                    "position": "right",
                    "grid": {"drawOnChartArea": False},
                    "ticks": {"precision": 0},
                    "title": {"display": True, "text": "Active contacts"},
                },
            }
        },
    }


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
        "override_form": override_form or HealthOverrideForm(tenant=tenant, today=today),
    }


def account_page(request, account_id, *, override_form=None, status=200):
    tenant = request.tenant
    today = tenant_today(tenant)
    account = get_object_or_404(
        Account.objects.for_tenant(tenant).select_related("owner", "health", "health__override_by"), pk=account_id
    )
    usage = usage_per_day(tenant, account, today)
    contacts = list(account_contacts(tenant, account)[: CONTACTS_SHOWN + 1])
    # One read of the members serves the task form and the owner choice: the queryset keeps its rows.
    members = User.objects.members_of(tenant)
    context = {
        **health_context(request, account, today, override_form=override_form),
        **account_lifecycle_context(request, account),
        **account_alerts_context(request, account),
        **account_playbooks_context(request, account, members),
        **account_notes_context(request, account),
        **account_owner_context(request, members),
        "contacts": contacts[:CONTACTS_SHOWN],
        "contacts_more": len(contacts) > CONTACTS_SHOWN,
        "events": recent_events(tenant, account),
        "usage": usage,
        "usage_chart": usage_chart(usage),
        "usage_days": len(usage),
        "has_usage": any(row["events"] for row in usage),
    }
    return render(request, "customers/account_detail.html", context, status=status)


@tenant_page
def account_detail(request, account_id):
    return account_page(request, account_id)


@tenant_page
@require_POST
def account_health_override(request, account_id):
    """Set or remove the account's health override; CSMs and admins only."""
    tenant = request.tenant
    account = get_object_or_404(Account.objects.for_tenant(tenant), pk=account_id)
    if not can_change(request):
        return forbidden_for_viewers(request)
    if request.POST.get("action") == "clear":
        if health_override_clear(tenant=tenant, account=account, actor=request.user):
            tenant_summaries_forget(tenant)
            messages.success(request, "The override is removed; the computed health shows again.")
        return redirect("account-detail", tenant_slug=tenant.slug, account_id=account.pk)
    form = HealthOverrideForm(request.POST, tenant=tenant, today=tenant_today(tenant))
    if not form.is_valid():
        return account_page(request, account.pk, override_form=form, status=400)
    health_override_set(
        tenant=tenant,
        account=account,
        actor=request.user,
        reason=form.cleaned_data["reason"],
        score=form.cleaned_data["score"],
        colour=form.cleaned_data["colour"],
        expires_at=form.expires_at(),
    )
    tenant_summaries_forget(tenant)
    messages.success(request, "Health override saved.")
    return redirect("account-detail", tenant_slug=tenant.slug, account_id=account.pk)


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


def report_onboarding(tenant):
    result = kpi_time_to_onboard(tenant=tenant)
    cohorts = result["cohorts"]
    chart = bar_chart(
        [row["cohort"] for row in cohorts],
        [{"label": "Median days to onboard", "data": [row["median_days"] for row in cohorts], "backgroundColor": ACCENT}],
        y_title="Days",
    )
    return {"stage": result["stage"], "rows": cohorts, "chart": chart}


def report_funnel(tenant):
    per_stage = kpi_accounts_per_stage(tenant=tenant)
    conversion = {row["from_stage"]: row for row in kpi_conversion(tenant=tenant)}
    rows = [{**row, "conversion": conversion.get(row["stage"])} for row in per_stage]
    chart = bar_chart(
        [row["name"] for row in rows],
        [{"label": "Accounts now", "data": [row["accounts"] for row in rows], "backgroundColor": ACCENT}],
        horizontal=True,
        y_title="Accounts",
    )
    return {"rows": rows, "chart": chart}


def report_health_over_time(tenant, today):
    """Accounts per colour on each day that has snapshots (one grouped query)."""
    first_day = today - dt.timedelta(days=REPORT_DAYS - 1)
    counts = {}
    rows = (
        HealthSnapshot.objects.for_tenant(tenant)
        .filter(day__gte=first_day, day__lte=today)
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


def report_renewals(tenant, today):
    """Accounts renewing in the next 90 days, by window and visible colour, with their MRR (one query)."""
    rows = (
        Account.objects.for_tenant(tenant)
        .filter(renewal_date__gte=today, renewal_date__lte=today + dt.timedelta(days=RENEWAL_WINDOWS[-1][1]))
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


def report_mrr_by_stage(tenant, stages):
    totals = {
        row["lifecycle__stage_id"]: row
        for row in Account.objects.for_tenant(tenant)
        .values("lifecycle__stage_id")
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


@tenant_page
def reports(request):
    tenant = request.tenant
    today = tenant_today(tenant)
    stages = stages_in_order(tenant=tenant)
    context = {"stages": stages, "colour_names": [COLOUR_NAMES[key] for key in COLOUR_KEYS]}
    if stages:
        context.update(
            onboarding=report_onboarding(tenant),
            funnel=report_funnel(tenant),
            health_over_time=report_health_over_time(tenant, today),
            renewals=report_renewals(tenant, today),
            mrr=report_mrr_by_stage(tenant, stages),
        )
    return render(request, "health/reports.html", context)

