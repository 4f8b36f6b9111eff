"""Health reads: history, why a score changed, distribution, and what-if runs of a draft scorecard.

None of these write. Preview and backtest score in Python with the pure
functions of health.scoring, so they show exactly what publishing would do.
"""

import datetime as dt
import statistics

from django.db.models import Count, Q, Sum

from csplatform.customers.models import Account
from csplatform.tenancy.timezones import day_text, tenant_today
from lifecycle.models import Stage

from .models import HealthSnapshot
from .scoring import COLOURS, GREEN, RED, YELLOW, breakdown_values, format_number, measure_changes, score_account
from .services import ScoringContext, account_values, accounts_with_values, health_settings_get, stage_id_of

UNSCORED = "unscored"
MAX_LISTED = 100
# The days ahead in which an owner's renewals are counted.
RENEWING_DAYS = 90


def _snapshot_dict(snapshot):
    if snapshot is None:
        return None
    return {"day": snapshot.day, "score": snapshot.score, "colour": snapshot.colour or None}


def health_history(*, tenant, account, days=90, today=None):
    """The account's daily snapshots of the last `days` days, oldest first."""
    today = today or tenant_today(tenant)
    return list(
        HealthSnapshot.objects.for_tenant(tenant)
        .filter(account=account, day__gt=today - dt.timedelta(days=days), day__lte=today)
        .order_by("day")
    )


def _snapshot_on_or_before(tenant, account, day):
    return HealthSnapshot.objects.for_tenant(tenant).filter(account=account, day__lte=day).order_by("-day").first()


def _describe(snapshot):
    return f"{format_number(snapshot.score)} ({snapshot.colour or 'not scored'})"


def health_why(*, tenant, account, from_day=None, to_day=None):
    """What changed between two snapshots, by measure, in words and numbers.

    Each day reads the latest snapshot on or before it, so a day without a
    run still compares with the score that held then.
    """
    to_day = to_day or tenant_today(tenant)
    from_day = from_day or to_day - dt.timedelta(days=7)
    old = _snapshot_on_or_before(tenant, account, from_day)
    new = _snapshot_on_or_before(tenant, account, to_day)
    result = {"from": _snapshot_dict(old), "to": _snapshot_dict(new), "score_change": None, "summary": "", "changes": []}
    if old is None or new is None:
        missing = from_day if old is None else to_day
        result["summary"] = f"There is no health snapshot on or before {day_text(missing)} to compare with."
        return result
    if old.score is not None and new.score is not None:
        result["score_change"] = round(new.score - old.score, 1)
    if old.pk == new.pk:
        # The same snapshot at both ends: nothing scored it in between, as nothing scores a customer who left.
        result["summary"] = f"Health has not been scored since {day_text(new.day)}, when it was {_describe(new)}."
    elif old.score == new.score and old.colour == new.colour:
        result["summary"] = f"Health stayed at {_describe(new)} from {day_text(old.day)} to {day_text(new.day)}."
    else:
        verb = "rose" if (new.score or 0) > (old.score or 0) else "fell"
        result["summary"] = (
            f"Health {verb} from {_describe(old)} on {day_text(old.day)} to {_describe(new)} on {day_text(new.day)}."
        )
    result["changes"] = measure_changes(old.breakdown, new.breakdown)
    return result


def health_distribution(*, tenant):
    """Accounts per stage and colour (visible colours, overrides included), and each owner's current customers
    per colour (`owner_books`); two grouped queries plus the stages.

    The totals count the current customers: those in a terminal stage kept the score they had when they left,
    which their stage's row shows.
    """
    rows = (
        Account.objects.for_tenant(tenant)
        .values("lifecycle__stage_id", "lifecycle__stage__is_terminal", "health__colour")
        .order_by()
        .annotate(n=Count("pk"))
    )
    totals = dict.fromkeys((*COLOURS, UNSCORED), 0)
    per_stage = {}
    for row in rows:
        colour = row["health__colour"] or UNSCORED
        if not row["lifecycle__stage__is_terminal"]:
            totals[colour] += row["n"]
        stage_counts = per_stage.setdefault(row["lifecycle__stage_id"], dict.fromkeys((*COLOURS, UNSCORED), 0))
        stage_counts[colour] += row["n"]
    stages = [
        {"stage": stage.key, "name": stage.name, **per_stage.get(stage.pk, dict.fromkeys((*COLOURS, UNSCORED), 0))}
        for stage in Stage.objects.for_tenant(tenant).order_by("position", "pk")
    ]
    if None in per_stage:
        stages.append({"stage": None, "name": "No stage", **per_stage[None]})
    owners = owner_books(Account.objects.for_tenant(tenant), tenant_today(tenant))
    return {"colours": totals, "stages": stages, "owners": owners}


def owner_books(accounts, today):
    """Each owner's current customers per visible colour, with their MRR and how many renew in the next
    RENEWING_DAYS days (one query): the team's books side by side, owners by name, the accounts without an owner
    last (`owner_id` None). Each book is keyed as the API lists it, `owner` its owner's email."""
    renewing = Q(renewal_date__gte=today, renewal_date__lte=today + dt.timedelta(days=RENEWING_DAYS))
    rows = (
        accounts.still_customers()
        .values("owner_id", "owner__name", "owner__email", "health__colour")
        .annotate(n=Count("pk"), mrr=Sum("mrr"), renewing=Count("pk", filter=renewing))
        .order_by()
    )
    books = {}
    for row in rows:
        book = books.setdefault(row["owner_id"], {
            "owner_id": row["owner_id"], "owner": row["owner__email"],
            "name": row["owner__name"] or row["owner__email"] or "No owner",
            **dict.fromkeys((*COLOURS, UNSCORED), 0), "customers": 0, "mrr": 0, "renewing_90d": 0,
        })
        book[row["health__colour"] or UNSCORED] += row["n"]
        book["customers"] += row["n"]
        book["mrr"] += row["mrr"] or 0
        book["renewing_90d"] += row["renewing"]
    return sorted(books.values(), key=lambda book: (book["owner_id"] is None, book["name"].lower()))


def _summary(scores, colours):
    histogram = [0] * 10
    for score in scores:
        if score is not None:
            histogram[min(int(score // 10), 9)] += 1
    known = [score for score in scores if score is not None]
    return {
        "colours": {colour: colours.count(colour) for colour in COLOURS} | {UNSCORED: colours.count("")},
        # Ten buckets: 0-9, 10-19, ..., 90-100.
        "histogram": histogram,
        "average": round(statistics.fmean(known), 1) if known else None,
    }


def scorecard_preview(*, tenant, scorecard, measures):
    """Score the scorecard's current accounts with draft `measures` and compare with how they score now.

    "Now" is the version that scores each account today (the scorecard's
    published one, or the tenant default for a scorecard not yet published),
    over the same current metric values; overrides are left out.
    """
    context = ScoringContext(tenant)
    before_scores, before_colours, after_scores, after_colours, changes = [], [], [], [], []
    for account in accounts_with_values(tenant).order_by("pk").iterator(chunk_size=2000):
        stage_id = stage_id_of(account)
        if scorecard.stage_id:
            if stage_id != scorecard.stage_id:
                continue
        elif not context.default_scores(stage_id):
            continue
        current = context.version_for(stage_id)
        before = score_account(current.measures, account_values(account, current.measures), context.bands) if current else None
        after = score_account(measures, account_values(account, measures), context.bands)
        before_score, before_colour = (before.score, before.colour) if before else (None, "")
        before_scores.append(before_score)
        before_colours.append(before_colour)
        after_scores.append(after.score)
        after_colours.append(after.colour)
        if before_colour != after.colour:
            changes.append(
                {
                    "account_id": account.pk, "name": account.name,
                    "before_score": before_score, "before_colour": before_colour or None,
                    "after_score": after.score, "after_colour": after.colour or None,
                }
            )
    return {
        "accounts": len(after_scores),
        "before": _summary(before_scores, before_colours),
        "after": _summary(after_scores, after_colours),
        "colour_changes_total": len(changes),
        "colour_changes": changes[:MAX_LISTED],
    }


def churn_day(attributes):
    """The day an account churned, from its `churned_at` attribute; None without a date there."""
    value = attributes.get("churned_at")
    if not isinstance(value, str):
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


LEVELS = {"red": {RED}, "red_or_yellow": {RED, YELLOW}}


def _final_run_start(days_and_colours, flagged):
    """The first day of the unbroken run of flagged days that ends the list, or None if the last day is not flagged."""
    start = None
    for day, colour in reversed(days_and_colours):
        if colour not in flagged:
            break
        start = day
    return start


def scorecard_backtest(*, tenant, measures, days=90, today=None):
    """Replay `measures` over the raw values stored in the last `days` days of snapshots.

    For churned accounts (`attributes.churned_at`), an account is caught at a
    level (red, or red or yellow) when its last snapshot up to the churn day
    is flagged; the lead time is counted from the start of that final
    flagged run. The others are false alarms when their last snapshot is
    flagged, judged the same way. Sources that no snapshot holds replay as
    missing data.
    """
    today = today or tenant_today(tenant)
    bands = health_settings_get(tenant).bands
    churned = {
        row["pk"]: (row["name"], day)
        for row in Account.objects.for_tenant(tenant).filter(attributes__has_key="churned_at").values("pk", "name", "attributes")
        if (day := churn_day(row["attributes"])) is not None
    }
    timelines = {}
    seen_sources = set()
    snapshots = (
        HealthSnapshot.objects.for_tenant(tenant)
        .filter(day__gt=today - dt.timedelta(days=days), day__lte=today)
        .order_by("account_id", "day")
        .values_list("account_id", "day", "breakdown")
    )
    for account_id, day, breakdown in snapshots.iterator(chunk_size=2000):
        churn = churned.get(account_id)
        if churn and day > churn[1]:
            continue
        values = breakdown_values(breakdown)
        seen_sources.update(source for source, value in values.items() if value is not None)
        timelines.setdefault(account_id, []).append((day, score_account(measures, values, bands).colour))

    levels = {}
    for level, flagged in LEVELS.items():
        caught, leads, alarms = 0, [], 0
        for account_id, timeline in timelines.items():
            if account_id in churned:
                start = _final_run_start(timeline, flagged)
                if start is not None:
                    caught += 1
                    leads.append((churned[account_id][1] - start).days)
            elif timeline[-1][1] in flagged:
                alarms += 1
        churned_with_history = sum(1 for account_id in churned if account_id in timelines)
        levels[level] = {
            "churned": churned_with_history,
            "caught": caught,
            "recall": round(caught / churned_with_history, 3) if churned_with_history else None,
            "median_lead_days": statistics.median(leads) if leads else None,
            "non_churned": len(timelines) - churned_with_history,
            "non_churned_flagged": alarms,
            "precision": round(caught / (caught + alarms), 3) if caught + alarms else None,
        }
    accounts = []
    for account_id, (name, churned_at) in sorted(churned.items(), key=lambda item: item[1][1]):
        timeline = timelines.get(account_id, [])
        red_start = _final_run_start(timeline, LEVELS["red"]) if timeline else None
        flag_start = _final_run_start(timeline, LEVELS["red_or_yellow"]) if timeline else None
        accounts.append(
            {
                "account_id": account_id, "name": name, "churned_at": churned_at, "snapshots": len(timeline),
                "red_days_before_churn": (churned_at - red_start).days if red_start else None,
                "flagged_days_before_churn": (churned_at - flag_start).days if flag_start else None,
            }
        )
    return {
        "days": days,
        "snapshots_replayed": sum(len(timeline) for timeline in timelines.values()),
        "levels": levels,
        "churned_accounts": accounts[:MAX_LISTED],
        "sources_without_history": sorted({m["source"] for m in measures} - seen_sources),
        "colours_at_end": {
            colour: sum(1 for timeline in timelines.values() if timeline[-1][1] == colour) for colour in (GREEN, YELLOW, RED)
        },
    }
