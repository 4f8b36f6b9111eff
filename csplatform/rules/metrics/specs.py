"""What to compute: the built-in metrics, a tenant's definitions, and the days each one reads."""

import datetime as dt
from dataclasses import dataclass

from ..models import Aggregation, MetricDefinition, MetricSubject


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


def window_start(today, window_days):
    return today - dt.timedelta(days=window_days - 1)


def lookback_start(spec, today):
    """The first day a spec reads: a trend also reads the window before its own."""
    days = spec.window_days * 2 if spec.aggregation == Aggregation.TREND else spec.window_days
    return window_start(today, days)


def empty_value(spec):
    """The value of a metric with nothing in its window: zero for counts and sums, unknown otherwise."""
    if spec.aggregation in (Aggregation.AVERAGE, Aggregation.LATEST, Aggregation.TREND):
        return None
    return 0.0 if spec.aggregation == Aggregation.SUM else 0


# The aggregations DailyRollup answers; the others read property or value rollups.
EVENT_AGGREGATIONS = (Aggregation.COUNT, Aggregation.ACTIVE_DAYS, Aggregation.DISTINCT_CONTACTS, Aggregation.TREND)


class MetricPlan:
    """The tenant's definitions and the built-ins, sorted into the query family that computes each."""

    def __init__(self, definitions):
        account = [MetricSpec.from_definition(d) for d in definitions if d.subject == MetricSubject.ACCOUNT]
        contact = [MetricSpec.from_definition(d) for d in definitions if d.subject == MetricSubject.CONTACT]
        account_events = ACCOUNT_ROLLUP_METRICS + [s for s in account if s.aggregation in EVENT_AGGREGATIONS]
        # Most event metrics of an account are sums over its contacts' rollups; active days are not.
        self.account_summed = [s for s in account_events if s.aggregation != Aggregation.ACTIVE_DAYS]
        self.account_active_days = [s for s in account_events if s.aggregation == Aggregation.ACTIVE_DAYS]
        self.property_totals = [s for s in account if s.aggregation in (Aggregation.SUM, Aggregation.AVERAGE)]
        self.property_latest = [s for s in account if s.aggregation == Aggregation.LATEST]
        self.distinct_values = [s for s in account if s.aggregation == Aggregation.DISTINCT_VALUES]
        # Property and value rollups carry no contact, so contact metrics read
        # DailyRollup only (the API enforces it).
        contact_counted = [s for s in contact if s.aggregation in EVENT_AGGREGATIONS]
        self.contact_events = CONTACT_ROLLUP_METRICS + contact_counted
        self.account_defaults = {s.key: empty_value(s) for s in ACCOUNT_ROLLUP_METRICS + account}
        self.contact_defaults = {s.key: empty_value(s) for s in CONTACT_ROLLUP_METRICS + contact}

    @classmethod
    def for_tenant(cls, tenant):
        return cls(list(MetricDefinition.objects.for_tenant(tenant)))


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
