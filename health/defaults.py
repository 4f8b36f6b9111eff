"""Ready-made scorecards that fit the kind of stage an account is in.

Customer behaviour depends on the stage: a new account is healthy when it
gets set up and reaches first value, an adopting one when more of its people
use more of the product, a mature one when usage holds, customers are happy,
support is quiet and the renewal is not at risk. `scorecards_apply_defaults`
picks one of these for each stage by its key and name; the tenant default
covers every stage without its own.

They read built-in metrics where one exists, plus a few tenant metrics over
common event names (`login`, `feature_used`, ...) that a tenant tunes to its
own events afterwards: among them feature breadth (distinct `feature` values
of `feature_used`) for adoption and the usage trend (this month against the
one before) for every stage where usage should hold or grow.
"""

from dataclasses import dataclass

from django.db import transaction

from csplatform.rules.models import Aggregation, MetricDefinition
from csplatform.rules.services import metric_definition_create
from lifecycle.models import Stage

from .models import Scorecard
from .services import scorecard_create


@dataclass(frozen=True)
class MetricSeed:
    key: str
    label: str
    event_names: tuple
    window_days: int
    aggregation: str = Aggregation.COUNT
    property: str = ""


METRICS = {
    seed.key: seed
    for seed in [
        MetricSeed("logins_30d", "Logins in the last 30 days", ("login",), 30),
        MetricSeed("setup_events_90d", "Setup steps in the last 90 days", ("invite_sent", "integration_connected"), 90),
        MetricSeed("feature_uses_30d", "Feature uses in the last 30 days", ("feature_used",), 30),
        MetricSeed("support_tickets_30d", "Support tickets in the last 30 days", ("support_ticket",), 30),
        MetricSeed("nps_avg_90d", "Average NPS answer over 90 days", ("nps.answered",), 90, Aggregation.AVERAGE, "score"),
        MetricSeed(
            "feature_breadth_30d", "Distinct features used in the last 30 days", ("feature_used",), 30,
            Aggregation.DISTINCT_VALUES, "feature",
        ),
        MetricSeed(
            "usage_trend_30d", "Change in logins and feature use, last 30 days against the 30 before (%)",
            ("login", "feature_used"), 30, Aggregation.TREND,
        ),
    ]
}


def higher(source, label, bad, good, weight, missing="skip"):
    return {
        "source": source, "label": label, "weight": weight, "missing": missing,
        "mapping": {"type": "thresholds", "bad": bad, "good": good, "direction": "higher_is_better"},
    }


def lower(source, label, bad, good, weight, missing="skip"):
    return {
        "source": source, "label": label, "weight": weight, "missing": missing,
        "mapping": {"type": "thresholds", "bad": bad, "good": good, "direction": "lower_is_better"},
    }


def bands(source, label, pairs, weight, missing="skip"):
    return {"source": source, "label": label, "weight": weight, "missing": missing,
            "mapping": {"type": "bands", "bands": pairs}}


LAST_SEEN = "Days since anyone was last seen"


def usage_trend(weight):
    """Falling usage warns before the totals look low: a 30% fall scores nothing, holding steady or growing
    full marks. A new account has no month before to compare with, so the measure is skipped."""
    return higher("usage_trend_30d", "Change in usage against the 30 days before (%)", -30, 0, weight)


SCORECARDS = {
    "onboarding": {
        "name": "Onboarding health",
        "description": "Set up and reaching first value: setup steps, logins, people active, usage not falling, "
        "recent activity.",
        "measures": [
            # Ninety days, so that setup done early still counts for an account onboarding slowly.
            higher("setup_events_90d", "Setup steps (invites, integrations)", 0, 3, 2, "score_as_bad"),
            higher("logins_30d", "Logins in the last 30 days", 0, 15, 2),
            higher("active_contacts_7d", "People active in the last 7 days", 0, 3, 2),
            usage_trend(4),
            lower("days_since_last_seen", LAST_SEEN, 7, 1, 1, "score_as_bad"),
        ],
    },
    "adoption": {
        "name": "Adoption health",
        "description": "More people using more of the product: active users, feature use and breadth, usage not "
        "falling, steady activity.",
        "measures": [
            bands("active_contacts_30d", "People active in the last 30 days", [[0, 0], [1, 30], [3, 60], [6, 85], [None, 100]], 3),
            higher("feature_uses_30d", "Feature uses in the last 30 days", 2, 40, 2),
            higher("feature_breadth_30d", "Distinct features used in the last 30 days", 1, 5, 2),
            # Adoption that stalls shows first as falling usage, while the totals still look fine.
            usage_trend(4),
            higher("events_7d", "Events in the last 7 days", 0, 30, 1),
            lower("days_since_last_seen", LAST_SEEN, 14, 2, 1, "score_as_bad"),
        ],
    },
    "mature": {
        "name": "Mature account health",
        "description": "Usage holds and does not fall, customers are happy, support is quiet and the renewal "
        "is not at risk.",
        "measures": [
            higher("events_30d", "Events in the last 30 days", 10, 150, 2),
            usage_trend(2),
            higher("active_contacts_30d", "People active in the last 30 days", 1, 8, 2),
            higher("nps_avg_90d", "Average NPS answer over 90 days", 4, 9, 2),
            lower("support_tickets_30d", "Support tickets in the last 30 days", 8, 1, 1),
            bands("days_to_renewal", "Days to renewal", [[0, 0], [30, 50], [90, 80], [None, 100]], 1),
            lower("days_since_last_seen", LAST_SEEN, 21, 3, 1, "score_as_bad"),
        ],
    },
    "default": {
        "name": "Default health",
        "description": "For stages without a scorecard of their own: activity, people active, recency.",
        "measures": [
            higher("events_30d", "Events in the last 30 days", 0, 150, 2),
            higher("active_contacts_30d", "People active in the last 30 days", 0, 5, 2),
            lower("days_since_last_seen", LAST_SEEN, 30, 3, 1, "score_as_bad"),
        ],
    },
}

# Words in a stage's key or name that tell its kind; checked in this order,
# so "mature_adoption" is mature and "early_adoption" adoption.
STAGE_KINDS = [
    ("mature", ("mature", "value", "advoca", "expan", "retention", "renewal", "loyal")),
    ("adoption", ("adopt", "usage", "experience", "engagement", "growth")),
    ("onboarding", ("onboard", "implement", "activation", "setup", "trial", "welcome", "conversion", "connection")),
]


def stage_kind(key, name):
    """`onboarding`, `adoption`, `mature`, or None for a stage the tenant default should cover."""
    text = f"{key} {name}".lower()
    for kind, words in STAGE_KINDS:
        if any(word in text for word in words):
            return kind
    return None


def metrics_needed(kind):
    return [METRICS[m["source"]] for m in SCORECARDS[kind]["measures"] if m["source"] in METRICS]


@transaction.atomic
def scorecards_apply_defaults(*, tenant, actor=None):
    """Give each stage without a scorecard the default that fits its kind, and the tenant a default scorecard.

    1. Sort the tenant's non-terminal stages into onboarding-, adoption- and
       mature-like by key and name; the others are left to the tenant default.
    2. Create the tenant metrics those scorecards read, unless the tenant
       already has a metric of that key (the tenant's own definition wins).
    3. Create and publish one scorecard per matched stage, and the tenant
       default if there is none. Existing scorecards are never touched, so
       running it again only fills gaps. Returns the created scorecards.
    """
    covered = set(Scorecard.objects.for_tenant(tenant).values_list("stage_id", flat=True))
    plan = []
    for stage in Stage.objects.for_tenant(tenant).filter(is_terminal=False).order_by("position", "pk"):
        kind = stage_kind(stage.key, stage.name)
        if kind and stage.pk not in covered:
            plan.append((stage, kind))
    if None not in covered:
        plan.append((None, "default"))
    existing_metrics = set(MetricDefinition.objects.for_tenant(tenant).values_list("key", flat=True))
    for seed in {seed.key: seed for _, kind in plan for seed in metrics_needed(kind)}.values():
        if seed.key not in existing_metrics:
            metric_definition_create(
                tenant=tenant, actor=actor,
                fields={
                    "key": seed.key, "label": seed.label, "event_names": list(seed.event_names),
                    "window_days": seed.window_days, "aggregation": seed.aggregation, "property": seed.property,
                },
            )
    created = []
    for stage, kind in plan:
        card = SCORECARDS[kind]
        name = f"{stage.name} health" if stage else card["name"]
        created.append(
            scorecard_create(
                tenant=tenant, actor=actor, name=name, stage=stage, description=card["description"],
                measures=card["measures"],
            )
        )
    return created
