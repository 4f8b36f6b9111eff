"""The health fields that criteria can read: `health.score`, `health.colour`, `health.delta_7d`, `health.delta_30d`.

Registered with the rules registry when the app is ready. They read the
visible score and colour (an override's while it is in force), the ones a
CSM sees on the dashboard. An account never scored reads as missing.
"""

from django.db.models import F, Value
from django.db.models.functions import NullIf

from csplatform.rules.registry import Field, FieldType, register_field

from .models import HealthScore

HEALTH_FIELDS = [
    ("score", FieldType.NUMBER, "Health score (0-100)"),
    ("colour", FieldType.STRING, "Health colour (green, yellow, red)"),
    ("delta_7d", FieldType.NUMBER, "Health score change over 7 days"),
    ("delta_30d", FieldType.NUMBER, "Health score change over 30 days"),
]


def _reader(attribute):
    def value(account, tenant):
        try:
            health = account.health
        except HealthScore.DoesNotExist:
            return None
        # An empty colour means "not scored", which criteria treat as missing.
        return getattr(health, attribute) if getattr(health, attribute) != "" else None

    return value


def _expression(attribute):
    if attribute == "colour":
        return lambda tenant: NullIf(F("health__colour"), Value(""))
    return lambda tenant: F(f"health__{attribute}")


def register_criteria_fields():
    for attribute, field_type, label in HEALTH_FIELDS:
        register_field(
            Field(
                name=f"health.{attribute}",
                subject="account",
                type=field_type,
                label=label,
                expression=_expression(attribute),
                value=_reader(attribute),
                related=("health",),
            )
        )
