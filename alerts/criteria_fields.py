"""The criteria field `segments`: the keys of the segments an account is in now.

Alert rules and playbook audiences can then say `segments contains "at_risk"`.
An account is in a contact segment while any of its contacts is. An account
in no segment reads as missing (NULL in SQL, None in Python), as every
other field without a value does.
"""

from django.db.models import Aggregate, JSONField, OuterRef, Subquery

from csplatform.rules.registry import Field, FieldType, register_field

from .models import SegmentMembership


class SegmentKeys(Aggregate):
    """The distinct values of a text column of the group as a JSON array, on SQLite and PostgreSQL."""

    function = "json_group_array"
    output_field = JSONField()
    allow_distinct = True

    def __init__(self, expression, **extra):
        super().__init__(expression, distinct=True, **extra)

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, function="jsonb_agg", **extra)


def _expression(tenant):
    keys = (
        SegmentMembership.objects.for_tenant(tenant)
        .current()
        .filter(account_id=OuterRef("pk"))
        .order_by()
        .values("account_id")
        .annotate(keys=SegmentKeys("segment__key"))
        .values("keys")
    )
    return Subquery(keys, output_field=JSONField())


def _value(account, tenant):
    keys = (
        SegmentMembership.objects.for_tenant(tenant)
        .current()
        .filter(account_id=account.pk)
        .values_list("segment__key", flat=True)
        .distinct()
    )
    return sorted(keys) or None


def register_criteria_fields():
    register_field(
        Field(
            name="segments",
            subject="account",
            type=FieldType.LIST,
            label="Segments the account is in (keys)",
            expression=_expression,
            value=_value,
        )
    )
