"""The health pages and the parts of the dashboard pages that health owns: the sparklines, the whole-portfolio
figures, the portfolio's rows, the account page's health card, and the reports page (its figures are in reports).

The pages that bring every app's data together (the portfolio, the account
page) are csplatform.dashboard, above the apps.
"""

import datetime as dt

from django.db.models import Count
from django.shortcuts import render

from csplatform.customers.models import Account
from csplatform.customers.views import with_last_activity
from csplatform.tenancy.decorators import tenant_page
from csplatform.tenancy.models import User
from csplatform.tenancy.timezones import tenant_today
from lifecycle.selectors import stages_in_order
from lifecycle.sla import days_in_stage_expression

from . import reports as report
from .analysis import health_why
from .forms import HealthOverrideForm, ReportScopeForm
from .models import HealthSnapshot
from .reports import COLOUR_KEYS, COLOUR_NAMES
from .services import ScoringContext

SPARK_DAYS = 30
TREND_DAYS = 90


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
    """Accounts per stage over the whole portfolio, the current customers per visible colour, and the plans in use.

    A customer who left has no health to act on, so the colours leave out the accounts in a terminal stage.
    Whole-tenant figures: one query each, computed at most once a minute (see tenancy.summaries).
    """
    by_stage, by_colour = {}, dict.fromkeys(COLOUR_KEYS, 0)
    rows = Account.objects.for_tenant(tenant).values(
        "lifecycle__stage_id", "lifecycle__stage__is_terminal", "health__colour"
    ).annotate(n=Count("pk"))
    for row in rows.order_by():
        by_stage[row["lifecycle__stage_id"]] = by_stage.get(row["lifecycle__stage_id"], 0) + row["n"]
        if not row["lifecycle__stage__is_terminal"]:
            by_colour[row["health__colour"] or "unscored"] += row["n"]
    plans = Account.objects.for_tenant(tenant).exclude(plan="").order_by("plan").values_list("plan", flat=True)
    return {"by_stage": by_stage, "by_colour": by_colour, "plans": list(plans.distinct())}


def portfolio_summary(figures, stages):
    by_stage, by_colour = figures["by_stage"], figures["by_colour"]
    return {
        "stages": [{"stage": stage, "accounts": by_stage.get(stage.pk, 0)} for stage in stages],
        "unstaged": by_stage.get(None, 0),
        "colours": [{"key": key, "name": COLOUR_NAMES[key], "accounts": by_colour[key]} for key in COLOUR_KEYS],
        "departed": sum(by_stage.get(stage.pk, 0) for stage in stages if stage.is_terminal),
        "total": sum(by_stage.values()),
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


def health_kept_since_leaving(tenant, account, state):
    """Whether the account's health is the score it had when it left: it is in a terminal stage that no
    scorecard scores (ScoringContext's rule). Read for a departed account's page only."""
    if getattr(account, "health", None) is None or state is None or not state.stage.is_terminal:
        return False
    return ScoringContext(tenant).version_for(state.stage_id) is None


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
            onboarding=report.onboarding(tenant, owned),
            funnel=report.funnel(tenant, owned),
            health_over_time=report.health_over_time(tenant, owned, today),
            renewals=report.renewals(accounts, today),
            owners=report.owners(accounts, today),
            mrr=report.mrr_by_stage(accounts, stages),
            mrr_movements=report.mrr_movements(tenant, owned, today),
            departures=report.departures(tenant, owned, today),
        )
    return render(request, "health/reports.html", context)

