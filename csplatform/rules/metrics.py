"""Per-account and per-contact metric values, computed set-based from the daily rollups.

`metrics_compute` reads only DailyRollup and DailyPropertyRollup (never raw
events) and issues a fixed number of queries per chunk of accounts, whatever
the chunk's size: one grouped query per metric family, each metric a
conditional aggregate of it. The values land in AccountMetrics and
ContactMetrics as `{key: number or null}`, which the criteria language reads
as `metric.<key>` and `contact.metric.<key>`.

Windows count tenant-local days and include today: a 7-day window is today
and the six days before it. Everything is as of `today`, which may be a past
day (health backfill replays history): rollups after it are not read, and a
contact's `last_seen_at` after it gives way to the last rollup day up to it.
"""

import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.db.models import Count, F, FloatField, Max, Q, Sum, Value, Window
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, NullIf, RowNumber
from django.utils import timezone

from csplatform.customers.models import Account, Contact, DailyPropertyRollup, DailyRollup, DailyValueRollup
from csplatform.tenancy.timezones import tenant_today, tenant_zone

from .models import AccountMetrics, Aggregation, ContactMetrics, MetricDefinition, MetricSubject
from .registry import Field, FieldType, register_namespace

CHUNK_SIZE = 2000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class MetricSpec:
    """What to compute: a tenant's MetricDefinition or a built-in. `event_names=None` means every event."""

    key: str
    label: str
    aggregation: str
    window_days: int
    event_names: tuple | None = None
    property: str = ""

    @classmethod
    def from_definition(cls, definition):
        return cls(
            key=definition.key,
            label=definition.label,
            aggregation=definition.aggregation,
            window_days=definition.window_days,
            event_names=tuple(definition.event_names),
            property=definition.property,
        )


# Built-in metrics that are date arithmetic on the account row or the last activity day.
ACCOUNT_DATE_METRICS = {
    "days_since_signup": "Days since signup",
    "days_to_renewal": "Days to renewal",
    "days_to_trial_end": "Days to trial end",
    "days_to_card_expiry": "Days to card expiry",
    "days_since_last_seen": "Days since anyone at the account was last seen",
}
CONTACT_DATE_METRICS = {
    "days_since_last_seen": "Days since the contact was last seen",
}


def _event_counts(noun):
    return [
        MetricSpec(f"events_{days}d", f"Events in the last {days} days{noun}", Aggregation.COUNT, days)
        for days in (7, 30, 90)
    ]


ACCOUNT_ROLLUP_METRICS = [
    MetricSpec("active_contacts_7d", "Active contacts in the last 7 days", Aggregation.DISTINCT_CONTACTS, 7),
    MetricSpec("active_contacts_30d", "Active contacts in the last 30 days", Aggregation.DISTINCT_CONTACTS, 30),
    *_event_counts(""),
]
CONTACT_ROLLUP_METRICS = _event_counts(" by the contact")

BUILTIN_METRICS = {
    MetricSubject.ACCOUNT: {**ACCOUNT_DATE_METRICS, **{spec.key: spec.label for spec in ACCOUNT_ROLLUP_METRICS}},
    MetricSubject.CONTACT: {**CONTACT_DATE_METRICS, **{spec.key: spec.label for spec in CONTACT_ROLLUP_METRICS}},
}
# Tenant keys may not shadow a built-in of either subject.
RESERVED_KEYS = set(BUILTIN_METRICS[MetricSubject.ACCOUNT]) | set(BUILTIN_METRICS[MetricSubject.CONTACT])


def builtin_metrics():
    """`[{"key", "label", "subject"}]` of every built-in metric, for the API and editors."""
    return [
        {"key": key, "label": label, "subject": subject}
        for subject, metrics in BUILTIN_METRICS.items()
        for key, label in metrics.items()
    ]


def _window_start(today, window_days):
    return today - dt.timedelta(days=window_days - 1)


def _lookback_start(spec, today):
    """The first day a spec reads: a trend also reads the window before its own."""
    days = spec.window_days * 2 if spec.aggregation == Aggregation.TREND else spec.window_days
    return _window_start(today, days)


def _events_q(spec):
    return Q() if spec.event_names is None else Q(event__in=spec.event_names)


def _window_q(spec, today):
    return Q(day__gte=_window_start(today, spec.window_days)) & _events_q(spec)


def _previous_window_q(spec, today):
    return Q(day__gte=_lookback_start(spec, today), day__lt=_window_start(today, spec.window_days)) & _events_q(spec)


def _rollup_aggregates(spec, today):
    """The conditional aggregates one spec needs from DailyRollup, by name suffix."""
    q = _window_q(spec, today)
    if spec.aggregation == Aggregation.COUNT:
        return {"": Sum("count", filter=q)}
    if spec.aggregation == Aggregation.ACTIVE_DAYS:
        return {"": Count("day", distinct=True, filter=q)}
    if spec.aggregation == Aggregation.TREND:
        return {"": Sum("count", filter=q), "_before": Sum("count", filter=_previous_window_q(spec, today))}
    return {"": Count("contact_ref", distinct=True, filter=q & Q(contact_ref__gt=0))}


def trend_percent(current, before):
    """The change from `before` to `current` in percent, one decimal; unknown when there was nothing before."""
    if not before:
        return None
    return round((current - before) * 100 / before, 1)


def _rollup_value(spec, row, name):
    if spec.aggregation == Aggregation.TREND:
        return trend_percent(row[name] or 0, row[f"{name}_before"] or 0)
    return row[name] or 0


def _days_between(start, end):
    return (end - start).days if start and end else None


def _local_date(value, zone):
    return value.astimezone(zone).date() if value else None


def _recency(row):
    return (row["day"], row["latest_at"] or EPOCH)


def _days_since_signup(signup_date, today):
    # An account that signs up after the day computed for did not exist yet.
    if signup_date is None or signup_date > today:
        return None
    return (today - signup_date).days


def _latest(*days):
    days = [day for day in days if day is not None]
    return max(days) if days else None


class _Rollups:
    """The grouped rollup queries of one chunk; `group` names the columns a row is keyed by."""

    def __init__(self, tenant, account_ids, today):
        self.tenant = tenant
        self.account_ids = account_ids
        self.today = today

    def _base(self, model, group, specs):
        earliest = min(_lookback_start(spec, self.today) for spec in specs)
        return (
            model.objects.for_tenant(self.tenant)
            .filter(account_id__in=self.account_ids, day__gte=earliest, day__lte=self.today)
            .values(*group)
            .order_by()
        )

    @staticmethod
    def _keyed(rows, group):
        return {tuple(row[name] for name in group): row for row in rows}

    def events(self, group, specs):
        """One query: every count / active_days / distinct_contacts / trend spec as conditional aggregates."""
        if not specs:
            return {}
        aggregates = {
            f"m{i}{suffix}": aggregate
            for i, spec in enumerate(specs)
            for suffix, aggregate in _rollup_aggregates(spec, self.today).items()
        }
        rows = self._base(DailyRollup, group, specs).filter(count__gt=0).annotate(**aggregates)
        return {
            key: {spec.key: _rollup_value(spec, row, f"m{i}") for i, spec in enumerate(specs)}
            for key, row in self._keyed(rows, group).items()
        }

    def distinct_values(self, specs):
        """One query: the number of distinct values of each spec's text property over its window."""
        if not specs:
            return {}
        aggregates = {
            f"v{i}": Count("value", distinct=True, filter=_window_q(spec, self.today) & Q(prop=spec.property))
            for i, spec in enumerate(specs)
        }
        rows = self._base(DailyValueRollup, ["account_id"], specs).annotate(**aggregates)
        return {
            account_id: {spec.key: row[f"v{i}"] for i, spec in enumerate(specs)}
            for (account_id,), row in self._keyed(rows, ["account_id"]).items()
        }

    def last_days(self, group):
        """One query: the last day with any event, over all history up to today."""
        rows = (
            DailyRollup.objects.for_tenant(self.tenant)
            .filter(account_id__in=self.account_ids, day__lte=self.today, count__gt=0)
            .values(*group)
            .order_by()
            .annotate(last_day=Max("day"))
        )
        return {key: row["last_day"] for key, row in self._keyed(rows, group).items()}

    def property_totals(self, specs):
        """One query: sum and count of the property for every sum / average spec."""
        if not specs:
            return {}
        aggregates = {}
        for i, spec in enumerate(specs):
            q = _window_q(spec, self.today) & Q(prop=spec.property)
            aggregates[f"t{i}"] = Sum("total", filter=q)
            aggregates[f"n{i}"] = Sum("count", filter=q)
        rows = self._base(DailyPropertyRollup, ["account_id"], specs).annotate(**aggregates)
        values = {}
        for (account_id,), row in self._keyed(rows, ["account_id"]).items():
            values[account_id] = {}
            for i, spec in enumerate(specs):
                total, count = row[f"t{i}"] or 0.0, row[f"n{i}"] or 0
                if spec.aggregation == Aggregation.SUM:
                    values[account_id][spec.key] = float(total)
                else:
                    values[account_id][spec.key] = total / count if count else None
        return values

    def property_latest(self, specs):
        """One query: the newest value of each (event, property) pair per account, then per spec the
        newest of its events' values that falls inside its window."""
        if not specs:
            return {}
        pairs = Q()
        for spec in specs:
            pairs |= Q(event__in=spec.event_names, prop=spec.property)
        newest_first = Window(
            RowNumber(),
            partition_by=[F("account_id"), F("event"), F("prop")],
            order_by=[F("day").desc(), F("latest_at").desc(nulls_last=True)],
        )
        rows = (
            self._base(DailyPropertyRollup, ["account_id", "event", "prop", "day", "latest_at", "latest_value"], specs)
            .filter(pairs, latest_value__isnull=False)
            .annotate(rank=newest_first)
            .filter(rank=1)
        )
        chosen = {}
        # At most one row per (account, event, property): the newest value of that pair.
        for row in rows:
            for spec in specs:
                if row["event"] not in spec.event_names or row["prop"] != spec.property:
                    continue
                if row["day"] < _window_start(self.today, spec.window_days):
                    continue
                best = chosen.get((row["account_id"], spec.key))
                if best is None or _recency(row) > _recency(best):
                    chosen[row["account_id"], spec.key] = row
        values = {}
        for (account_id, key), row in chosen.items():
            values.setdefault(account_id, {})[key] = row["latest_value"]
        return values


def _empty_value(spec):
    """The value of a metric with nothing in its window: zero for counts and sums, unknown otherwise."""
    if spec.aggregation in (Aggregation.AVERAGE, Aggregation.LATEST, Aggregation.TREND):
        return None
    return 0.0 if spec.aggregation == Aggregation.SUM else 0


# The aggregations DailyRollup answers; the others read property or value rollups.
EVENT_AGGREGATIONS = (Aggregation.COUNT, Aggregation.ACTIVE_DAYS, Aggregation.DISTINCT_CONTACTS, Aggregation.TREND)


class _Plan:
    """The tenant's definitions and the built-ins, sorted into the query family that computes each."""

    def __init__(self, definitions):
        account = [MetricSpec.from_definition(d) for d in definitions if d.subject == MetricSubject.ACCOUNT]
        contact = [MetricSpec.from_definition(d) for d in definitions if d.subject == MetricSubject.CONTACT]
        self.account_events = ACCOUNT_ROLLUP_METRICS + [s for s in account if s.aggregation in EVENT_AGGREGATIONS]
        self.property_totals = [s for s in account if s.aggregation in (Aggregation.SUM, Aggregation.AVERAGE)]
        self.property_latest = [s for s in account if s.aggregation == Aggregation.LATEST]
        self.distinct_values = [s for s in account if s.aggregation == Aggregation.DISTINCT_VALUES]
        # Property and value rollups carry no contact, so contact metrics read
        # DailyRollup only (the API enforces it).
        contact_counted = [s for s in contact if s.aggregation in EVENT_AGGREGATIONS]
        self.contact_events = CONTACT_ROLLUP_METRICS + contact_counted
        self.account_defaults = {s.key: _empty_value(s) for s in ACCOUNT_ROLLUP_METRICS + account}
        self.contact_defaults = {s.key: _empty_value(s) for s in CONTACT_ROLLUP_METRICS + contact}


def distinct_value_properties(tenant):
    """The (event, property) pairs whose text values the tenant's distinct_values metrics count; one query.

    Ingest asks this once per batch to know which values to roll up.
    """
    definitions = MetricDefinition.objects.for_tenant(tenant).filter(aggregation=Aggregation.DISTINCT_VALUES)
    return {
        (event, prop)
        for event_names, prop in definitions.values_list("event_names", "property")
        for event in event_names
    }


ACCOUNT_FIELDS = ("id", "signup_date", "renewal_date", "trial_ends_at", "card_expires_at")


def _account_chunks(tenant, account_ids):
    """Chunks of account rows, one query each; ids of other tenants are silently not found."""
    accounts = Account.objects.for_tenant(tenant).order_by("pk").values(*ACCOUNT_FIELDS)
    if account_ids is not None:
        account_ids = sorted(set(account_ids))
        for start in range(0, len(account_ids), CHUNK_SIZE):
            chunk = list(accounts.filter(pk__in=account_ids[start : start + CHUNK_SIZE]))
            if chunk:
                yield chunk
        return
    last_id = 0
    while chunk := list(accounts.filter(pk__gt=last_id)[:CHUNK_SIZE]):
        yield chunk
        if len(chunk) < CHUNK_SIZE:
            return
        last_id = chunk[-1]["id"]


def metrics_compute(*, tenant, account_ids=None, today=None):
    """Compute and store every metric of these accounts (all of the tenant's when None) and their contacts.

    1. Load the tenant's metric definitions once.
    2. For each chunk of accounts, read the accounts and their contacts, run
       one grouped query per metric family over the rollups, and upsert the
       AccountMetrics and ContactMetrics rows in bulk.
    `today` is the tenant-local date the windows end on. Returns the number of
    accounts computed.
    """
    today = today or tenant_today(tenant)
    plan = _Plan(list(MetricDefinition.objects.for_tenant(tenant)))
    computed = 0
    for accounts in _account_chunks(tenant, account_ids):
        _compute_chunk(tenant, accounts, plan, today)
        computed += len(accounts)
    return computed


@transaction.atomic
def _compute_chunk(tenant, accounts, plan, today):
    zone = tenant_zone(tenant)
    account_ids = [account["id"] for account in accounts]
    contacts = list(
        Contact.objects.for_tenant(tenant)
        .filter(account_id__in=account_ids)
        .order_by()
        .values("id", "account_id", "last_seen_at")
    )
    rollups = _Rollups(tenant, account_ids, today)
    account_events = rollups.events(["account_id"], plan.account_events)
    totals = rollups.property_totals(plan.property_totals)
    latest = rollups.property_latest(plan.property_latest)
    distinct = rollups.distinct_values(plan.distinct_values)
    contact_events = rollups.events(["account_id", "contact_ref"], plan.contact_events)
    # One query serves both subjects: an account's last day is the last of its contacts' (and of contact 0).
    contact_last_day = rollups.last_days(["account_id", "contact_ref"])
    account_last_day = {}
    for (account_id, _), day in contact_last_day.items():
        account_last_day[account_id] = _latest(account_last_day.get(account_id), day)

    now = timezone.now()
    contact_rows = []
    for contact in contacts:
        key = (contact["account_id"], contact["id"])
        last_seen = _local_date(contact["last_seen_at"], zone)
        if last_seen is not None and last_seen > today:
            # Seen after the day computed for: the rollups tell when it was last seen up to that day.
            last_seen = None
        account_last_day[contact["account_id"]] = _latest(account_last_day.get(contact["account_id"]), last_seen)
        values = {
            "days_since_last_seen": _days_between(_latest(contact_last_day.get(key), last_seen), today),
            **plan.contact_defaults,
            **contact_events.get(key, {}),
        }
        contact_rows.append(ContactMetrics(tenant=tenant, contact_id=contact["id"], values=values, computed_at=now))

    account_rows = []
    for account in accounts:
        account_id = account["id"]
        values = {
            "days_since_signup": _days_since_signup(account["signup_date"], today),
            "days_to_renewal": _days_between(today, account["renewal_date"]),
            "days_to_trial_end": _days_between(today, _local_date(account["trial_ends_at"], zone)),
            "days_to_card_expiry": _days_between(today, account["card_expires_at"]),
            "days_since_last_seen": _days_between(account_last_day.get(account_id), today),
            **plan.account_defaults,
            **account_events.get((account_id,), {}),
            **totals.get(account_id, {}),
            **latest.get(account_id, {}),
            **distinct.get(account_id, {}),
        }
        account_rows.append(AccountMetrics(tenant=tenant, account_id=account_id, values=values, computed_at=now))

    _upsert(AccountMetrics, tenant, "account", account_rows)
    _upsert(ContactMetrics, tenant, "contact", contact_rows)


def _upsert(model, tenant, subject_field, rows):
    if rows:
        model.objects.for_tenant(tenant).bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["tenant", subject_field],
            update_fields=["values", "computed_at"],
        )


def _metric_field(*, subject, prefix, key, label, description=""):
    """The criteria field `<prefix>.<key>`: the stored value, NULL/None when not computed yet."""

    def expression(tenant):
        # SQLite reads a JSON null as the text 'null', which would cast to 0.
        stored = NullIf(KeyTextTransform(key, "metric_values__values"), Value("null"))
        return Cast(stored, FloatField())

    def value(obj, tenant):
        try:
            stored = obj.metric_values.values.get(key)
        except ObjectDoesNotExist:
            return None
        return None if stored is None else float(stored)

    return Field(
        name=f"{prefix}.{key}",
        subject=subject,
        type=FieldType.NUMBER,
        label=label,
        expression=expression,
        value=value,
        description=description,
    )


def _metric_namespace(subject, prefix):
    """`resolve` and `list_fields` of one subject's metrics: the built-ins plus the tenant's definitions."""

    def definitions(tenant):
        return MetricDefinition.objects.for_tenant(tenant).filter(subject=subject)

    def resolve(tenant, key):
        label = BUILTIN_METRICS[subject].get(key)
        if label is not None:
            return _metric_field(subject=subject, prefix=prefix, key=key, label=label)
        definition = definitions(tenant).filter(key=key).first()
        if definition is None:
            return None
        return _metric_field(
            subject=subject, prefix=prefix, key=key, label=definition.label, description=definition.description
        )

    def list_fields(tenant):
        builtins = BUILTIN_METRICS[subject].items()
        fields = [_metric_field(subject=subject, prefix=prefix, key=key, label=label) for key, label in builtins]
        fields += [
            _metric_field(subject=subject, prefix=prefix, key=d.key, label=d.label, description=d.description)
            for d in definitions(tenant)
        ]
        return fields

    return resolve, list_fields


METRIC_PREFIXES = {"account": "metric", "contact": "contact.metric"}


def register_criteria_fields():
    """Let criteria read `metric.<key>` (accounts) and `contact.metric.<key>` (contacts); called from ready()."""
    for subject, prefix in METRIC_PREFIXES.items():
        resolve, list_fields = _metric_namespace(subject, prefix)
        register_namespace(prefix=prefix, subject=subject, resolve=resolve, list_fields=list_fields)
