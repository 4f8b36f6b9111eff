"""Reads of lifecycle data: the stage KPIs.

Each KPI is one query. PostgreSQL takes the median of stays itself
(percentile_cont); on SQLite, which has no percentile aggregate, medians are
taken in Python over the query's rows, one per account or one per completed
stay, never raw events.
"""

import statistics
from collections import Counter

from django.db import connection
from django.db.models import (
    Case,
    Count,
    DecimalField,
    Exists,
    F,
    IntegerField,
    Min,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import Coalesce, Lead

from csplatform.customers.models import Account, AccountChange
from csplatform.tenancy.timezones import by_month, day_start, month_starts, tenant_today

from .models import AccountStage, Stage, StageTransition, TransitionKind

SECONDS_PER_DAY = 86400
# The reasons for leaving listed, the most given first, and the months the API's departures cover.
DEPARTURE_REASONS = 8
DEPARTURE_MONTHS = 12


def _days(start, end):
    return (end - start).total_seconds() / SECONDS_PER_DAY


def _median(values):
    return round(statistics.median(values), 1) if values else None


def _of_accounts(queryset, accounts):
    """`queryset` (rows with an account) narrowed to `accounts`, a queryset of the tenant's accounts; all when None."""
    return queryset if accounts is None else queryset.filter(account_id__in=accounts.values("pk"))


def stages_in_order(*, tenant):
    return list(Stage.objects.for_tenant(tenant).order_by("position", "id"))


def onboarding_stage(*, tenant, key=None):
    """The stage whose exit ends onboarding: the one named `key`, else "onboarding", else the initial stage."""
    stages = Stage.objects.for_tenant(tenant)
    if key:
        return stages.filter(key=key).first()
    return stages.filter(key="onboarding").first() or stages.filter(is_initial=True).first()


def kpi_accounts_per_stage(*, tenant, accounts=None):
    """Accounts in each stage now; only those of `accounts` (a queryset of the tenant's) when given."""
    placed = _of_accounts(AccountStage.objects.for_tenant(tenant), accounts)
    counts = dict(placed.values("stage").annotate(n=Count("pk")).values_list("stage", "n"))
    return [{"stage": s.key, "name": s.name, "accounts": counts.get(s.pk, 0)} for s in stages_in_order(tenant=tenant)]


def _next_transition(tenant):
    """The account's transition right after the outer one (ids grow in the order moves happen)."""
    return StageTransition.objects.for_tenant(tenant).filter(account_id=OuterRef("account_id"), id__gt=OuterRef("id"))


def kpi_median_days_in_stage(*, tenant):
    """Median days of completed stays in each stage: from entering it to the next move."""
    if connection.vendor == "postgresql":
        medians = _stay_medians_in_sql(tenant)
    else:
        medians = _stay_medians_in_python(tenant)
    result = []
    for stage in stages_in_order(tenant=tenant):
        median, stays = medians.get(stage.pk, (None, 0))
        result.append({"stage": stage.key, "median_days": median, "completed_stays": stays})
    return result


def _stays(tenant):
    """Each transition with the time of the account's next one (ids grow in the order moves happen)."""
    return StageTransition.objects.for_tenant(tenant).annotate(
        left_at=Window(Lead("at"), partition_by=[F("account_id")], order_by=[F("id").asc()])
    )


def _stay_medians_in_sql(tenant):
    """{stage id: (median days, completed stays)}, aggregated by PostgreSQL: no row per stay leaves the database."""
    stays, params = _stays(tenant).values("to_stage_id", "at", "left_at").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT to_stage_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM left_at - at)), count(*)
            FROM ({stays}) AS stays
            WHERE left_at IS NOT NULL AND to_stage_id IS NOT NULL
            GROUP BY to_stage_id
            """,
            params,
        )
        return {
            stage_id: (round(seconds / SECONDS_PER_DAY, 1), count) for stage_id, seconds, count in cursor.fetchall()
        }


def _stay_medians_in_python(tenant):
    """The same medians where the database has no percentile aggregate (SQLite)."""
    stays = {}
    for stage_id, entered_at, left_at in _stays(tenant).values_list("to_stage_id", "at", "left_at"):
        if left_at is not None and stage_id is not None:
            stays.setdefault(stage_id, []).append(_days(entered_at, left_at))
    return {stage_id: (_median(days), len(days)) for stage_id, days in stays.items()}


def kpi_conversion(*, tenant, accounts=None):
    """For each pair of consecutive stages, the share of accounts (of `accounts` when given) that entered the
    first and later the second. Leaving for a terminal stage, such as Churned, is not going on."""
    stages = stages_in_order(tenant=tenant)
    pairs = [(stage, following) for stage, following in zip(stages, stages[1:]) if not following.is_terminal]
    if not pairs:
        return []
    next_stage = Case(
        *[When(to_stage_id=stage.pk, then=Value(following.pk)) for stage, following in pairs],
        default=Value(None),
        output_field=IntegerField(),
    )
    rows = (
        _of_accounts(StageTransition.objects.for_tenant(tenant), accounts)
        .filter(to_stage_id__in=[stage.pk for stage, _ in pairs])
        .alias(next_stage=next_stage)
        .alias(converted=Exists(_next_transition(tenant).filter(to_stage_id=OuterRef("next_stage"))))
        .values("to_stage_id")
        .annotate(
            entered=Count("account_id", distinct=True),
            converted_accounts=Count("account_id", distinct=True, filter=Q(converted=True)),
        )
    )
    counts = {row["to_stage_id"]: (row["entered"], row["converted_accounts"]) for row in rows}
    result = []
    for stage, following in pairs:
        entered, converted = counts.get(stage.pk, (0, 0))
        result.append(
            {
                "from_stage": stage.key,
                "to_stage": following.key,
                "entered": entered,
                "converted": converted,
                "rate": round(converted / entered, 4) if entered else None,
            }
        )
    return result


def kpi_time_to_onboard(*, tenant, stage_key=None, accounts=None):
    """By signup month, the accounts (of `accounts`, a queryset of the tenant's, when given) that left the
    onboarding stage for a stage that is not terminal, with the median days from their first placement; and,
    so that a recent month's few quick ones do not pass for the month, those still onboarding and those that
    left for a terminal stage, such as Churned, instead."""
    stage = onboarding_stage(tenant=tenant, key=stage_key)
    if stage is None:
        return {"stage": None, "cohorts": []}
    transitions = StageTransition.objects.for_tenant(tenant).filter(account_id=OuterRef("pk"))
    out_of_stage = transitions.filter(from_stage_id=stage.pk).order_by("id")
    in_stage = AccountStage.objects.for_tenant(tenant).filter(account_id=OuterRef("pk"), stage_id=stage.pk)
    rows = (
        (Account.objects.for_tenant(tenant) if accounts is None else accounts)
        .annotate(
            started_at=Subquery(transitions.filter(kind=TransitionKind.INITIAL).order_by("id").values("at")[:1]),
            onboarded_at=Subquery(out_of_stage.filter(to_stage__is_terminal=False).values("at")[:1]),
            onboarding=Exists(in_stage),
        )
        .filter(started_at__isnull=False)
        .filter(
            Q(onboarded_at__isnull=False) | Q(onboarding=True) | Exists(out_of_stage.filter(to_stage__is_terminal=True))
        )
        .values_list("signup_date", "started_at", "onboarded_at", "onboarding")
    )
    if connection.vendor == "postgresql":
        cohorts = _onboarding_cohorts_in_sql(rows)
    else:
        cohorts = _onboarding_cohorts_in_python(rows)
    return {
        "stage": stage.key,
        "cohorts": [
            {"cohort": month, "accounts": onboarded, "median_days": median, "still_onboarding": still, "left": left}
            for month, (median, onboarded, still, left) in sorted(cohorts.items())
        ],
    }


def _onboarding_cohorts_in_sql(rows):
    """{signup month: (median days, onboarded, still onboarding, left)}, aggregated by PostgreSQL (times are
    UTC, as Django reads them)."""
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT to_char(COALESCE(signup_date, (started_at AT TIME ZONE 'UTC')::date), 'YYYY-MM') AS month,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM onboarded_at - started_at)),
                   count(onboarded_at),
                   count(*) FILTER (WHERE onboarded_at IS NULL AND onboarding),
                   count(*) FILTER (WHERE onboarded_at IS NULL AND NOT onboarding)
            FROM ({sql}) AS placed
            GROUP BY month
            """,
            params,
        )
        return {
            month: (None if seconds is None else round(seconds / SECONDS_PER_DAY, 1), *counts)
            for month, seconds, *counts in cursor.fetchall()
        }


def _onboarding_cohorts_in_python(rows):
    """The same where the database has no percentile aggregate (SQLite)."""
    days, still, left = {}, Counter(), Counter()
    for signup_date, started_at, onboarded_at, onboarding in rows:
        month = (signup_date or started_at.date()).strftime("%Y-%m")
        if onboarded_at is not None:
            days.setdefault(month, []).append(_days(started_at, onboarded_at))
        elif onboarding:
            still[month] += 1
        else:
            left[month] += 1
    months = days.keys() | still.keys() | left.keys()
    return {month: (_median(days.get(month)), len(days.get(month, ())), still[month], left[month]) for month in months}


def _mrr_when_left(tenant):
    """The MRR the account had when it left: the value before the first recorded change of its MRR after the
    move, or its MRR now when none came after (a billing system often zeroes it a day or two later)."""
    later = (
        AccountChange.objects.for_tenant(tenant)
        .filter(account_id=OuterRef("account_id"), fields__has_key="mrr", at__gt=OuterRef("at"))
        .order_by("at", "pk")
        .annotate(before=AccountChange.recorded_mrr(0))
        .values("before")[:1]
    )
    return Coalesce(Subquery(later), F("account__mrr"), output_field=DecimalField(max_digits=14, decimal_places=2))


def departures_since(*, tenant, since, accounts=None):
    """The moves into a terminal stage, such as Churned, from `since` on (of `accounts` when given), each with
    the MRR its account had then (`mrr_then`)."""
    moves = StageTransition.objects.for_tenant(tenant).filter(to_stage__is_terminal=True, at__gte=since)
    return _of_accounts(moves, accounts).annotate(mrr_then=_mrr_when_left(tenant))


def _in_the_lifecycle_at(tenant, accounts, moments):
    """How many accounts were in the lifecycle at each of `moments`: placed in a stage before it, less those in a
    terminal stage since before it. Two queries. An account won back since it left counts as having stayed."""
    placed = _of_accounts(StageTransition.objects.for_tenant(tenant), accounts)
    out = _of_accounts(AccountStage.objects.for_tenant(tenant).filter(stage__is_terminal=True), accounts)
    firsts = placed.values("account_id").annotate(first=Min("at")).order_by().aggregate(
        **{f"m{n}": Count("account_id", filter=Q(first__lt=moment)) for n, moment in enumerate(moments)}
    )
    gone = out.aggregate(**{f"m{n}": Count("pk", filter=Q(entered_at__lt=moment)) for n, moment in enumerate(moments)})
    return [firsts[f"m{n}"] - gone[f"m{n}"] for n in range(len(moments))]


def kpi_departures(*, tenant, months, accounts=None):
    """The customers who left (entered a terminal stage, such as Churned) in each of `months` (their first
    days, oldest first, in the tenant's zone): how many, the accounts in the lifecycle at the month's start,
    the churn rate (their share of those, in %) and the MRR they had; and why they left, by the reasons their
    moves gave, the most given first. Four queries whatever the number of accounts."""
    starts = [day_start(tenant, first) for first in months]
    left = departures_since(tenant=tenant, since=starts[0], accounts=accounts)
    sums = by_month(tenant, left, left=Count("pk"), mrr=Sum("mrr_then"))
    rows = []
    for first, staying in zip(months, _in_the_lifecycle_at(tenant, accounts, starts)):
        found = sums.get(first, {})
        count = found.get("left", 0)
        rows.append({
            "month": first,
            "left": count,
            "in_lifecycle_at_start": staying,
            "churn_rate": round(100 * count / staying, 1) if staying else None,
            "mrr_lost": found.get("mrr") or 0,
        })
    reasons = (
        left.values("reason")
        .annotate(left=Count("pk"), mrr_lost=Sum("mrr_then"))
        .order_by("-left", "-mrr_lost", "reason")
    )
    return {"months": rows, "reasons": list(reasons[:DEPARTURE_REASONS])}


def lifecycle_kpis(*, tenant, onboarding_stage_key=None):
    return {
        "accounts_per_stage": kpi_accounts_per_stage(tenant=tenant),
        "median_days_in_stage": kpi_median_days_in_stage(tenant=tenant),
        "conversion": kpi_conversion(tenant=tenant),
        "time_to_onboard": kpi_time_to_onboard(tenant=tenant, stage_key=onboarding_stage_key),
        "departures": kpi_departures(tenant=tenant, months=month_starts(tenant_today(tenant), DEPARTURE_MONTHS)),
    }
