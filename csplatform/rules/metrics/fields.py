"""The criteria fields `metric.<key>` (accounts) and `contact.metric.<key>` (contacts)."""

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import FloatField, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, NullIf

from ..models import MetricDefinition
from ..registry import Field, FieldType, register_namespace
from .specs import BUILTIN_METRICS


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
        related=("metric_values",),
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
