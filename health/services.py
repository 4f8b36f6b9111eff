"""Health writes: scorecard configuration, scoring the accounts, overrides."""

import datetime as dt
from collections import namedtuple

from django.db import transaction
from django.db.models import Exists, F, Max, OuterRef, Q
from django.utils import timezone

from csplatform.customers.models import Account
from csplatform.customers.services import dirty_marks_set
from csplatform.rules.metrics import BUILTIN_METRICS, metrics_compute
from csplatform.rules.models import MetricDefinition, MetricSubject
from csplatform.sql import OneOf, overwrite, upsert
from csplatform.tenancy.services import audit_record
from csplatform.tenancy.timezones import tenant_today, tenant_zone
from lifecycle.models import Stage, StageTransition

from .measures import ACCOUNT_FIELD_SOURCES, ATTRIBUTE_SOURCE, clean_measures
from .models import HealthScore, HealthSettings, HealthSnapshot, Scorecard, ScorecardVersion, override_in_force
from .scoring import score_account

CHUNK_SIZE = 1000


class InvalidMeasures(ValueError):
    """Measures that do not validate; `errors` maps each path to its message."""

    def __init__(self, errors):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def known_sources(tenant):
    """Every source a measure may read, with its label: account metrics (built-in and the tenant's) and fields."""
    sources = dict(BUILTIN_METRICS[MetricSubject.ACCOUNT])
    definitions = MetricDefinition.objects.for_tenant(tenant).filter(subject=MetricSubject.ACCOUNT)
    sources.update(definitions.values_list("key", "label"))
    sources.update(ACCOUNT_FIELD_SOURCES)
    return sources


def measures_validate(*, tenant, measures):
    clean, errors = clean_measures(measures, known_sources(tenant))
    if errors:
        raise InvalidMeasures(errors)
    return clean


def health_settings_get(tenant):
    """The tenant's colour bands; the defaults (unsaved) until an admin changes them."""
    return HealthSettings.objects.for_tenant(tenant).first() or HealthSettings(tenant=tenant)


def _settings_snapshot(settings):
    return {"red_below": settings.red_below, "green_from": settings.green_from}


@transaction.atomic
def health_settings_update(*, tenant, actor, red_below, green_from):
    if not 0 < red_below <= green_from <= 100:
        raise ValueError("The bands need 0 < red_below <= green_from <= 100.")
    settings = health_settings_get(tenant)
    before = _settings_snapshot(settings) if settings.pk else None
    settings.red_below, settings.green_from = red_below, green_from
    settings.save()
    audit_record(
        tenant=tenant, actor=actor, action="health_settings.updated", obj=settings, before=before,
        after=_settings_snapshot(settings),
    )
    _mark_scored_accounts_dirty(tenant, Account.objects.for_tenant(tenant))
    return settings


def scorecard_snapshot(scorecard):
    return {
        "name": scorecard.name,
        "stage": scorecard.stage.key if scorecard.stage_id else None,
        "description": scorecard.description,
        "published_version": scorecard.published_version.number if scorecard.published_version_id else None,
    }


def _version_snapshot(version):
    return {"number": version.number, "measures": version.measures, "note": version.note}


def _accounts_of(tenant, scorecard):
    """The accounts a scorecard scores: those in its stage, or for the default the customers whose stage has none."""
    accounts = Account.objects.for_tenant(tenant)
    if scorecard.stage_id:
        return accounts.filter(lifecycle__stage_id=scorecard.stage_id)
    staged = Scorecard.objects.for_tenant(tenant).filter(stage__isnull=False, published_version__isnull=False)
    return accounts.still_customers().exclude(lifecycle__stage_id__in=staged.values("stage_id"))


def _mark_scored_accounts_dirty(tenant, accounts):
    # The pipeline rescores dirty accounts on its next run; a scorecard change
    # may touch every account, which is the pipeline's chunked work, not a request's.
    dirty_marks_set(tenant=tenant, accounts=accounts)


@transaction.atomic
def scorecard_create(*, tenant, actor, name, measures, stage=None, description="", publish=True):
    """Create a scorecard with its first version, published unless `publish` is False."""
    measures = measures_validate(tenant=tenant, measures=measures)
    scorecard = Scorecard.objects.create(tenant=tenant, stage=stage, name=name, description=description)
    version = ScorecardVersion.objects.create(
        tenant=tenant, scorecard=scorecard, number=1, measures=measures, created_by=_user(actor)
    )
    audit_record(
        tenant=tenant, actor=actor, action="scorecard.created", obj=scorecard,
        after={**scorecard_snapshot(scorecard), "version": _version_snapshot(version)},
    )
    if publish:
        scorecard = scorecard_version_publish(tenant=tenant, version=version, actor=actor)
    return scorecard


@transaction.atomic
def scorecard_update(*, tenant, scorecard, actor, **changes):
    """Change the name, description or stage; the measures change through a new version."""
    before = scorecard_snapshot(scorecard)
    old_accounts = set(_accounts_of(tenant, scorecard).values_list("pk", flat=True))
    for name, value in changes.items():
        setattr(scorecard, name, value)
    scorecard.save()
    audit_record(
        tenant=tenant, actor=actor, action="scorecard.updated", obj=scorecard, before=before,
        after=scorecard_snapshot(scorecard),
    )
    if "stage" in changes:
        new_accounts = set(_accounts_of(tenant, scorecard).values_list("pk", flat=True))
        _mark_scored_accounts_dirty(tenant, Account.objects.for_tenant(tenant).filter(pk__in=old_accounts | new_accounts))
    return scorecard


@transaction.atomic
def scorecard_delete(*, tenant, scorecard, actor):
    before = scorecard_snapshot(scorecard)
    accounts = set(_accounts_of(tenant, scorecard).values_list("pk", flat=True))
    audit_record(tenant=tenant, actor=actor, action="scorecard.deleted", obj=scorecard, before=before)
    scorecard.delete()
    _mark_scored_accounts_dirty(tenant, Account.objects.for_tenant(tenant).filter(pk__in=accounts))


@transaction.atomic
def scorecard_version_create(*, tenant, scorecard, actor, measures, note=""):
    """Save a new draft version; it scores nothing until published."""
    measures = measures_validate(tenant=tenant, measures=measures)
    # Lock the scorecard so two saves cannot take the same number.
    Scorecard.objects.for_tenant(tenant).select_for_update().filter(pk=scorecard.pk).first()
    last = ScorecardVersion.objects.for_tenant(tenant).filter(scorecard=scorecard).aggregate(n=Max("number"))["n"]
    version = ScorecardVersion.objects.create(
        tenant=tenant, scorecard=scorecard, number=(last or 0) + 1, measures=measures, note=note,
        created_by=_user(actor),
    )
    audit_record(
        tenant=tenant, actor=actor, action="scorecard_version.created", obj=version, after=_version_snapshot(version)
    )
    return version


@transaction.atomic
def scorecard_version_publish(*, tenant, version, actor):
    """Make this version the one that scores the scorecard's accounts, and have them rescored."""
    scorecard = Scorecard.objects.for_tenant(tenant).select_for_update().get(pk=version.scorecard_id)
    before = scorecard_snapshot(scorecard)
    if version.published_at is None:
        version.published_at = timezone.now()
        version.save(update_fields=["published_at"])
    scorecard.published_version = version
    scorecard.save(update_fields=["published_version", "updated_at"])
    audit_record(
        tenant=tenant, actor=actor, action="scorecard.published", obj=scorecard, before=before,
        after=scorecard_snapshot(scorecard),
    )
    _mark_scored_accounts_dirty(tenant, _accounts_of(tenant, scorecard))
    return scorecard


def _user(actor):
    return actor if getattr(actor, "pk", None) else None


class ScoringContext:
    """What scoring a tenant's accounts needs besides their values: colour bands and published scorecards."""

    def __init__(self, tenant):
        self.bands = health_settings_get(tenant).bands
        scorecards = (
            Scorecard.objects.for_tenant(tenant)
            .filter(published_version__isnull=False)
            .select_related("published_version")
        )
        self.by_stage = {}
        self.default = None
        for scorecard in scorecards:
            if scorecard.stage_id:
                self.by_stage[scorecard.stage_id] = scorecard.published_version
            else:
                self.default = scorecard.published_version
        # A customer who left keeps the score it had when it left: the default scores no terminal stage,
        # though a scorecard of the stage's own does.
        self.terminal = set(Stage.objects.for_tenant(tenant).filter(is_terminal=True).values_list("pk", flat=True))

    def default_scores(self, stage_id):
        return stage_id not in self.by_stage and stage_id not in self.terminal

    def version_for(self, stage_id):
        return self.default if self.default_scores(stage_id) else self.by_stage.get(stage_id)


def stage_id_of(account):
    state = getattr(account, "lifecycle", None)
    return state.stage_id if state else None


def account_values(account, measures):
    """The raw value of each measure's source for one account (metrics loaded as `metric_values`)."""
    metrics = getattr(account, "metric_values", None)
    return measure_values(
        measures, metric_values=metrics.values if metrics else {}, mrr=account.mrr, attributes=account.attributes
    )


def measure_values(measures, *, metric_values, mrr, attributes):
    """The raw value of each measure's source, from an account's stored metric values and fields."""
    values = {}
    for measure in measures:
        source = measure["source"]
        if source == "account.mrr":
            values[source] = float(mrr)
        elif match := ATTRIBUTE_SOURCE.match(source):
            values[source] = attributes.get(match.group(1))
        else:
            values[source] = metric_values.get(source)
    return values


def accounts_with_values(tenant):
    """Accounts with their metric values and stage, in one query."""
    return Account.objects.for_tenant(tenant).select_related("metric_values", "lifecycle")


def effective_health(computed_score, computed_colour, health, bands, now):
    """`(score, colour)` everyone sees: the override's while it is in force, else the computed ones."""
    if health is None or not health.override_active(now):
        return computed_score, computed_colour
    score = health.override_score if health.override_score is not None else computed_score
    if health.override_colour:
        return score, health.override_colour
    return score, bands.colour(score) if health.override_score is not None else computed_colour


OVERRIDE_FIELDS = ("override_score", "override_colour", "override_reason", "override_by", "override_at", "override_expires_at")
EMPTY_OVERRIDE = {
    "override_score": None, "override_colour": "", "override_reason": "", "override_by": None, "override_at": None,
    "override_expires_at": None,
}


def _account_id_chunks(tenant, account_ids, chunk_size):
    if account_ids is not None:
        account_ids = sorted(set(account_ids))
        for start in range(0, len(account_ids), chunk_size):
            yield account_ids[start : start + chunk_size]
        return
    ids = Account.objects.for_tenant(tenant).order_by("pk").values_list("pk", flat=True)
    last_id = 0
    while chunk := list(ids.filter(pk__gt=last_id)[:chunk_size]):
        yield chunk
        last_id = chunk[-1]


def health_score(*, tenant, account_ids=None, today=None, chunk_size=CHUNK_SIZE, stages=None, now=None):
    """Score these accounts (every account of the tenant when None) and record today's snapshot.

    1. Load the colour bands and the published scorecards once.
    2. Per chunk, in a fixed number of queries: the accounts with their
       metric values and stage, their current health rows (locked), and their
       snapshots of today and of 7 and 30 days back.
    3. Score each account with its stage's scorecard, else the tenant default
       unless the stage is terminal (accounts that neither covers are left
       alone: a customer who left keeps its last score, though an override
       of it that expired gives way to it), keep an override in
       force until it expires, and upsert in bulk the health rows and
       today's snapshots that changed; unchanged health rows only get the
       new computed_at.
    `stages` ({account id: stage id}) replaces the accounts' current stages,
    for replaying a past day; an account missing from it held no stage.
    `now` stamps a score of the past, as a replay of the tenant's history makes.
    Returns the ids of accounts whose visible colour changed (including
    accounts scored for the first time).
    """
    today = today or tenant_today(tenant)
    context = ScoringContext(tenant)
    if context.default is None and not context.by_stage:
        return []
    changed = []
    for ids in _account_id_chunks(tenant, account_ids, chunk_size):
        changed.extend(_score_chunk(tenant, ids, context, today, stages, now or timezone.now()))
    return changed


def _attnames(model, names):
    return tuple(model._meta.get_field(name).attname for name in names)


# Overrides as the columns read and written (override_by_id, not the user it points to).
OVERRIDE_COLUMNS = _attnames(HealthScore, OVERRIDE_FIELDS)
EMPTY_OVERRIDE_COLUMNS = dict(zip(OVERRIDE_COLUMNS, EMPTY_OVERRIDE.values()))
# What scoring decides; a row whose columns all hold it already is left alone but for computed_at.
SCORED_FIELDS = [
    "score", "colour", "breakdown", "scorecard_version", "computed_score", "computed_colour", "delta_7d", "delta_30d",
]
HEALTH_UPDATE_FIELDS = [*SCORED_FIELDS, "computed_at", *OVERRIDE_FIELDS]
SNAPSHOT_FIELDS = ["score", "colour", "breakdown", "scorecard_version"]
SNAPSHOT_COLUMNS = _attnames(HealthSnapshot, SNAPSHOT_FIELDS)


class StoredHealth(namedtuple("StoredHealth", _attnames(HealthScore, SCORED_FIELDS) + OVERRIDE_COLUMNS)):
    """An account's health row as scoring reads it: the columns it compares and keeps, without building a
    model instance for each of a chunk's thousands of rows."""

    def override_active(self, now):
        return override_in_force(self.override_at, self.override_expires_at, now)


# Today's snapshot as scoring reads it: its columns but the breakdown, and whether that is the health row's.
StoredSnapshot = namedtuple("StoredSnapshot", ["score", "colour", "scorecard_version_id", "holds_health_breakdown"])


def _scoring_rows(tenant, ids):
    """`(id, metric values, mrr, attributes, stage id)` of the chunk's accounts: just what scoring reads."""
    return list(
        Account.objects.for_tenant(tenant)
        .filter(OneOf("pk", ids))
        .values_list("pk", "metric_values__values", "mrr", "attributes", "lifecycle__stage_id")
    )


@transaction.atomic
def _score_chunk(tenant, ids, context, today, stages, now):
    """Score one chunk in a fixed number of queries; rows are written only where something changed.

    The health rows of accounts scored the same as before only get the new
    `computed_at`, in one statement; today's snapshots are upserted only
    where they differ from the one already stored for today.
    """
    accounts = _scoring_rows(tenant, ids)
    current = {
        account_id: StoredHealth(*columns)
        for account_id, *columns in HealthScore.objects.for_tenant(tenant)
        .select_for_update()
        .filter(OneOf("account_id", ids))
        .values_list("account_id", *StoredHealth._fields)
    }
    week_ago, month_ago = today - dt.timedelta(days=7), today - dt.timedelta(days=30)
    held = HealthSnapshot.objects.for_tenant(tenant).filter(OneOf("account_id", ids))
    past_scores = {
        (account_id, day): score
        for account_id, day, score in held.filter(day__in=[week_ago, month_ago]).values_list(
            "account_id", "day", "score"
        )
    }
    # Today's snapshots without their breakdowns: whether each holds the breakdown of its account's health row
    # is asked of the database, which compares them where they lie instead of sending and decoding both.
    same_breakdown = HealthScore.objects.for_tenant(tenant).filter(
        account_id=OuterRef("account_id"), breakdown=OuterRef("breakdown")
    )
    held_today = {
        account_id: StoredSnapshot(*values)
        for account_id, *values in held.filter(day=today)
        .annotate(holds_health_breakdown=Exists(same_breakdown))
        .values_list("account_id", *StoredSnapshot._fields)
    }
    health_rows, unchanged, snapshots, changed, expired = [], [], [], [], []
    for account_id, metric_values, mrr, attributes, stage_id in accounts:
        version = context.version_for(stage_id if stages is None else stages.get(account_id))
        health = current.get(account_id)
        if version is None:
            # Not scored (a customer who left keeps its last score); an override of it that ran out gives way.
            if health is not None and health.override_at and not health.override_active(now):
                expired.append(account_id)
                if health.colour != health.computed_colour:
                    changed.append(account_id)
            continue
        values = measure_values(version.measures, metric_values=metric_values or {}, mrr=mrr, attributes=attributes)
        result = score_account(version.measures, values, context.bands)
        score, colour = effective_health(result.score, result.colour, health, context.bands, now)
        keep_override = health is not None and health.override_active(now)
        override = EMPTY_OVERRIDE_COLUMNS
        if keep_override:
            override = {name: getattr(health, name) for name in OVERRIDE_COLUMNS}
        columns = {
            "score": score, "colour": colour, "breakdown": result.breakdown, "scorecard_version_id": version.pk,
            "computed_score": result.score, "computed_colour": result.colour,
            "delta_7d": _delta(result.score, past_scores.get((account_id, week_ago))),
            "delta_30d": _delta(result.score, past_scores.get((account_id, month_ago))),
            **override,
        }
        scored = StoredHealth(**columns)
        if health == scored:
            unchanged.append(account_id)
        else:
            health_rows.append((tenant.pk, account_id, now, *scored))
        snapshot = {
            "score": result.score, "colour": result.colour, "breakdown": result.breakdown,
            "scorecard_version_id": version.pk,
        }
        if not _snapshot_holds(held_today.get(account_id), snapshot, health):
            snapshots.append((tenant.pk, account_id, today, *(snapshot[column] for column in SNAPSHOT_COLUMNS)))
        if (health.colour if health else "") != colour:
            changed.append(account_id)
    upsert(
        HealthScore, ["tenant", "account", "computed_at", *StoredHealth._fields], health_rows,
        conflict=["tenant", "account"], action=overwrite(HEALTH_UPDATE_FIELDS),
    )
    if unchanged:
        HealthScore.objects.for_tenant(tenant).filter(OneOf("account_id", unchanged)).update(computed_at=now)
    if expired:
        HealthScore.objects.for_tenant(tenant).filter(OneOf("account_id", expired)).update(
            score=F("computed_score"), colour=F("computed_colour"), **EMPTY_OVERRIDE
        )
    upsert(
        HealthSnapshot, ["tenant", "account", "day", *SNAPSHOT_FIELDS], snapshots,
        conflict=["tenant", "account", "day"], action=overwrite(SNAPSHOT_FIELDS),
    )
    return changed


def _snapshot_holds(stored, snapshot, health):
    """Whether today's stored snapshot already holds `snapshot`: the same score, colour and scorecard version,
    and a breakdown the database found equal to the health row's (`health`, read before scoring), which is
    equal to the new one."""
    return (
        stored is not None
        and stored.holds_health_breakdown
        and health is not None
        and health.breakdown == snapshot["breakdown"]
        and (stored.score, stored.colour, stored.scorecard_version_id)
        == (snapshot["score"], snapshot["colour"], snapshot["scorecard_version_id"])
    )


def _delta(score, past_score):
    if score is None or past_score is None:
        return None
    return round(score - past_score, 1)


def _override_snapshot(health):
    return {
        "score": health.override_score, "colour": health.override_colour, "reason": health.override_reason,
        "expires_at": health.override_expires_at.isoformat() if health.override_expires_at else None,
    }


@transaction.atomic
def health_override_set(*, tenant, account, actor, reason, score=None, colour="", expires_at=None):
    """Set the score or colour a CSM knows better than the scorecard, until `expires_at` (or until removed).

    The computed score stays recorded beside it, and scoring keeps the
    override in force until it expires.
    """
    if score is None and not colour:
        raise ValueError("An override needs a score or a colour.")
    now = timezone.now()
    bands = health_settings_get(tenant).bands
    health = HealthScore.objects.for_tenant(tenant).select_for_update().filter(account=account).first()
    if health is None:
        health = HealthScore(tenant=tenant, account=account, computed_at=now)
    before = _override_snapshot(health) if health.override_active(now) else None
    health.override_score, health.override_colour, health.override_reason = score, colour, reason
    health.override_by, health.override_at, health.override_expires_at = _user(actor), now, expires_at
    health.score, health.colour = effective_health(health.computed_score, health.computed_colour, health, bands, now)
    health.save()
    audit_record(
        tenant=tenant, actor=actor, action="health.overridden", obj=account, before=before,
        after=_override_snapshot(health),
    )
    return health


@transaction.atomic
def health_override_clear(*, tenant, account, actor):
    """Remove an override; the computed score is what everyone sees again. False if there was none."""
    health = HealthScore.objects.for_tenant(tenant).select_for_update().filter(account=account).first()
    if health is None or not health.has_override:
        return False
    before = _override_snapshot(health)
    for name, value in EMPTY_OVERRIDE.items():
        setattr(health, name, value)
    health.score, health.colour = health.computed_score, health.computed_colour
    health.save()
    audit_record(tenant=tenant, actor=actor, action="health.override_removed", obj=account, before=before)
    return True


def _end_of_day(day, zone):
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=zone)


def _stages_by_day(tenant, days):
    """Yield `(day, {account id: stage id held at the end of that day})` for ascending `days`.

    One query reads the tenant's transitions in time order (a few small
    tuples per account); each day applies the ones before its end, so the
    latest move of an account wins. A move into a since-deleted stage holds
    no stage.
    """
    zone = tenant_zone(tenant)
    transitions = list(
        StageTransition.objects.for_tenant(tenant)
        .filter(at__lt=_end_of_day(days[-1], zone))
        .order_by("at", "pk")
        .values_list("account_id", "to_stage_id", "at")
    )
    held, applied = {}, 0
    for day in days:
        end = _end_of_day(day, zone)
        while applied < len(transitions) and transitions[applied][2] < end:
            account_id, stage_id, _ = transitions[applied]
            held[account_id] = stage_id
            applied += 1
        yield day, held


def health_backfill(*, tenant, days=90, today=None):
    """Rebuild the daily snapshots of the last `days` days from the rollups, oldest day first.

    1. For each past day, compute the metrics as of that day (their windows
       end on it) for the accounts that had signed up by then.
    2. Score each with the scorecard of the stage it held at the end of that
       day, replayed from the stage transitions (no transition by then: the
       tenant default), so the snapshots, the 7- and 30-day deltas and
       backtests read a real history.
    3. The last day is today and uses the current stages, which leaves the
       current metric values and health as a normal run would.
    Returns the number of snapshots written.
    """
    today = today or tenant_today(tenant)
    written = 0
    history = [today - dt.timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    for day, held in _stages_by_day(tenant, history):
        ids = list(
            Account.objects.for_tenant(tenant)
            .filter(Q(signup_date__isnull=True) | Q(signup_date__lte=day))
            .values_list("pk", flat=True)
        )
        if not ids:
            continue
        metrics_compute(tenant=tenant, account_ids=ids, today=day)
        health_score(tenant=tenant, account_ids=ids, today=day, stages=None if day == today else held)
        written += HealthSnapshot.objects.for_tenant(tenant).filter(day=day).count()
    return written
