"""Reads of lifecycle data: the stage KPIs.

Each KPI is one query. Medians are taken in Python over the query's rows
because SQLite has no percentile aggregate; the rows are one per account
or one per completed stay, never raw events.
"""

import statistics

from django.db.models import Case, Count, Exists, IntegerField, OuterRef, Q, Subquery, Value, When

from csplatform.customers.models import Account

from .models import AccountStage, Stage, StageTransition, TransitionKind

SECONDS_PER_DAY = 86400


def _days(start, end):
    return (end - start).total_seconds() / SECONDS_PER_DAY


def _median(values):
    return round(statistics.median(values), 1) if values else None


def stages_in_order(*, tenant):
    return list(Stage.objects.for_tenant(tenant).order_by("position", "id"))


def onboarding_stage(*, tenant, key=None):
    """The stage whose exit ends onboarding: the one named `key`, else "onboarding", else the initial stage."""
    stages = Stage.objects.for_tenant(tenant)
    if key:
        return stages.filter(key=key).first()
    return stages.filter(key="onboarding").first() or stages.filter(is_initial=True).first()


def kpi_accounts_per_stage(*, tenant):
    counts = dict(
        AccountStage.objects.for_tenant(tenant).values("stage").annotate(n=Count("pk")).values_list("stage", "n")
    )
    return [{"stage": s.key, "name": s.name, "accounts": counts.get(s.pk, 0)} for s in stages_in_order(tenant=tenant)]


def _next_transition(tenant):
    """The account's transition right after the outer one (ids grow in the order moves happen)."""
    return StageTransition.objects.for_tenant(tenant).filter(account_id=OuterRef("account_id"), id__gt=OuterRef("id"))


def kpi_median_days_in_stage(*, tenant):
    """Median days of completed stays in each stage: from entering it to the next move."""
    rows = (
        StageTransition.objects.for_tenant(tenant)
        .annotate(left_at=Subquery(_next_transition(tenant).order_by("id").values("at")[:1]))
        .filter(left_at__isnull=False, to_stage__isnull=False)
        .values_list("to_stage_id", "at", "left_at")
    )
    stays = {}
    for stage_id, entered_at, left_at in rows:
        stays.setdefault(stage_id, []).append(_days(entered_at, left_at))
    return [
        {"stage": s.key, "median_days": _median(stays.get(s.pk, [])), "completed_stays": len(stays.get(s.pk, []))}
        for s in stages_in_order(tenant=tenant)
    ]


def kpi_conversion(*, tenant):
    """For each pair of consecutive stages, the share of accounts that entered the first and later the second."""
    stages = stages_in_order(tenant=tenant)
    pairs = list(zip(stages, stages[1:]))
    if not pairs:
        return []
    next_stage = Case(
        *[When(to_stage_id=stage.pk, then=Value(following.pk)) for stage, following in pairs],
        default=Value(None),
        output_field=IntegerField(),
    )
    rows = (
        StageTransition.objects.for_tenant(tenant)
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


def kpi_time_to_onboard(*, tenant, stage_key=None):
    """Median days from an account's first placement to leaving the onboarding stage, by signup month."""
    stage = onboarding_stage(tenant=tenant, key=stage_key)
    if stage is None:
        return {"stage": None, "cohorts": []}
    transitions = StageTransition.objects.for_tenant(tenant).filter(account_id=OuterRef("pk"))
    rows = (
        Account.objects.for_tenant(tenant)
        .annotate(
            started_at=Subquery(transitions.filter(kind=TransitionKind.INITIAL).order_by("id").values("at")[:1]),
            onboarded_at=Subquery(transitions.filter(from_stage_id=stage.pk).order_by("id").values("at")[:1]),
        )
        .filter(started_at__isnull=False, onboarded_at__isnull=False)
        .values_list("signup_date", "started_at", "onboarded_at")
    )
    cohorts = {}
    for signup_date, started_at, onboarded_at in rows:
        month = (signup_date or started_at.date()).strftime("%Y-%m")
        cohorts.setdefault(month, []).append(_days(started_at, onboarded_at))
    return {
        "stage": stage.key,
        "cohorts": [
            {"cohort": month, "accounts": len(days), "median_days": _median(days)}
            for month, days in sorted(cohorts.items())
        ],
    }


def lifecycle_kpis(*, tenant, onboarding_stage_key=None):
    return {
        "accounts_per_stage": kpi_accounts_per_stage(tenant=tenant),
        "median_days_in_stage": kpi_median_days_in_stage(tenant=tenant),
        "conversion": kpi_conversion(tenant=tenant),
        "time_to_onboard": kpi_time_to_onboard(tenant=tenant, stage_key=onboarding_stage_key),
    }
