from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from csplatform.customers.ingest import value_rollups_rebuild
from csplatform.customers.models import Account
from csplatform.customers.services import dirty_marks_set
from csplatform.tenancy.services import audit_record

from .metrics import RESERVED_KEYS
from .models import PROPERTY_AGGREGATIONS, Aggregation, MetricDefinition, MetricSubject

DEFINITION_FIELDS = ("key", "label", "subject", "event_names", "window_days", "aggregation", "property", "description")
# Changing any of these changes computed values, so every account must be recomputed.
COMPUTED_FIELDS = ("subject", "event_names", "window_days", "aggregation", "property")
CONTACT_AGGREGATIONS = (Aggregation.COUNT, Aggregation.ACTIVE_DAYS, Aggregation.TREND)
KEY_TAKEN = "A metric with this key already exists."


def metric_definition_snapshot(definition):
    """The audited view of a metric definition."""
    return {name: getattr(definition, name) for name in DEFINITION_FIELDS}


def _validate(definition):
    """Field checks, then the rules that span fields; raises ValidationError keyed by field."""
    errors = {}
    try:
        # The (tenant, key) constraint is checked below with a clearer message.
        definition.full_clean(exclude=["tenant", "event_names"], validate_constraints=False)
    except ValidationError as exc:
        errors = exc.message_dict
    if definition.key in RESERVED_KEYS:
        errors.setdefault("key", []).append(f"'{definition.key}' is a built-in metric; choose another key.")
    elif _key_taken(definition):
        errors.setdefault("key", []).append(KEY_TAKEN)
    if not isinstance(definition.event_names, list) or not definition.event_names:
        errors.setdefault("event_names", []).append("List at least one event name.")
    elif not all(isinstance(name, str) and name.strip() for name in definition.event_names):
        errors.setdefault("event_names", []).append("Event names must be non-empty strings.")
    uses_property = definition.aggregation in PROPERTY_AGGREGATIONS
    if uses_property and not definition.property:
        errors.setdefault("property", []).append(
            "Sum, average and latest need the name of a numeric event property, distinct_values of a text one."
        )
    elif definition.property and not uses_property:
        errors.setdefault("property", []).append(
            "Only sum, average, latest and distinct_values read a property; leave it empty."
        )
    if definition.subject == MetricSubject.CONTACT and definition.aggregation not in CONTACT_AGGREGATIONS:
        # Property and value rollups are kept per account only, and a contact is one contact.
        errors.setdefault("aggregation", []).append("Contact metrics support count, active_days and trend.")
    if errors:
        raise ValidationError(errors)


def _key_taken(definition):
    others = MetricDefinition.objects.for_tenant(definition.tenant).exclude(pk=definition.pk)
    return others.filter(key=definition.key).exists()


def _save(definition):
    try:
        with transaction.atomic():
            definition.save()
    except IntegrityError as exc:
        # Another request created the same key between the check and the insert.
        raise ValidationError({"key": [KEY_TAKEN]}) from exc


def _roll_up_values(tenant, definition):
    """Ingest rolls up a text property's values only once a metric reads it, so cover the stored events now."""
    if definition.aggregation == Aggregation.DISTINCT_VALUES:
        value_rollups_rebuild(tenant=tenant, event_names=definition.event_names, prop=definition.property)


def _mark_accounts_dirty(tenant):
    dirty_marks_set(tenant=tenant, accounts=Account.objects.for_tenant(tenant))


@transaction.atomic
def metric_definition_create(*, tenant, fields, actor=None):
    """Create a tenant metric; every account is marked for recompute so it gets a value."""
    definition = MetricDefinition(tenant=tenant, **fields)
    _validate(definition)
    _save(definition)
    after = metric_definition_snapshot(definition)
    audit_record(tenant=tenant, actor=actor, action="metric.created", obj=definition, after=after)
    _roll_up_values(tenant, definition)
    _mark_accounts_dirty(tenant)
    return definition


@transaction.atomic
def metric_definition_update(*, tenant, definition, fields, actor=None):
    """Change a metric. Its key is fixed: criteria refer to `metric.<key>`."""
    if "key" in fields and fields["key"] != definition.key:
        raise ValidationError({"key": ["A metric's key cannot change once created; create a new metric instead."]})
    before = metric_definition_snapshot(definition)
    for name, value in fields.items():
        setattr(definition, name, value)
    _validate(definition)
    _save(definition)
    after = metric_definition_snapshot(definition)
    audit_record(tenant=tenant, actor=actor, action="metric.updated", obj=definition, before=before, after=after)
    if any(before[name] != after[name] for name in COMPUTED_FIELDS):
        _roll_up_values(tenant, definition)
        _mark_accounts_dirty(tenant)
    return definition


@transaction.atomic
def metric_definition_delete(*, tenant, definition, actor=None):
    """Delete a metric; the next recompute drops its value from every account."""
    before = metric_definition_snapshot(definition)
    audit_record(tenant=tenant, actor=actor, action="metric.deleted", obj=definition, before=before)
    definition.delete()
    _mark_accounts_dirty(tenant)
