"""Criteria -> one filtered queryset: each field becomes an alias, each clause a Q.

Every test starts with `<alias> IS NOT NULL AND ...`, so a test on a missing
value is FALSE rather than NULL, and `NOT` of it is TRUE, as in Python.
"""

import itertools

from django.db.models import BooleanField, ExpressionWrapper, F, FloatField, Q, TextField, Value
from django.db.models.functions import Cast, NullIf, StrIndex
from django.db.models.lookups import GreaterThan

from .expressions import JSONArrayContains
from .nodes import And, Clause, Not
from .registry import FieldType

LOOKUPS = {"==": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
_alias_numbers = itertools.count()


def field_expression(field, tenant):
    """The field's expression, normalised as evaluate.normalise() normalises its Python value."""
    expression = field.expression(tenant)
    if field.type == FieldType.NUMBER:
        return Cast(expression, FloatField())
    if field.type == FieldType.STRING:
        return NullIf(expression, Value(""), output_field=TextField())
    return expression


def _condition(criteria, moment):
    """`(aliases, q)`: each field the criteria read as a named expression, and the criteria as a Q over them.

    Alias names are unique per call, so the conditions of several criteria can share one query.
    """
    aliases = {}
    for bound in criteria.bound.values():
        for test in bound.tests:
            key = (test.field.name, test.field.type)
            if key not in aliases:
                aliases[key] = (f"criteria_{next(_alias_numbers)}", field_expression(test.field, criteria.tenant))
    names = {key: name for key, (name, _) in aliases.items()}
    return dict(aliases.values()), _q(criteria.tree, criteria.bound, names, moment)


def filter_queryset(criteria, queryset, moment):
    aliases, q = _condition(criteria, moment)
    return queryset.alias(**aliases).filter(q)


def annotate_queryset(criteria, queryset, name, moment):
    """`queryset` with a boolean annotation `name`: whether the row matches the criteria.

    A test on a missing value is FALSE, never NULL (see the module's docstring), so the annotation
    is true exactly where `filter_queryset` keeps the row.
    """
    aliases, q = _condition(criteria, moment)
    return queryset.alias(**aliases).annotate(**{name: ExpressionWrapper(q, output_field=BooleanField())})


def _q(node, bound, names, moment):
    if isinstance(node, Clause):
        clause = bound[id(node)]
        q = Q()
        for test in clause.tests:
            q |= _test_q(test, names[(test.field.name, test.field.type)], moment)
        return ~q if clause.negate else q
    if isinstance(node, Not):
        return ~_q(node.arg, bound, names, moment)
    parts = [_q(arg, bound, names, moment) for arg in node.args]
    combined = parts[0]
    for part in parts[1:]:
        combined = combined & part if isinstance(node, And) else combined | part
    return combined


def _test_q(test, alias, moment):
    present = Q(**{f"{alias}__isnull": False})
    field_type = test.field.type
    if test.kind == "exists":
        return present
    if test.kind == "cmp":
        value = moment.resolve(test.operand, field_type)
        if test.op == "!=":
            return present & ~Q(**{f"{alias}__exact": value})
        return present & Q(**{f"{alias}__{LOOKUPS[test.op]}": value})
    if test.kind in ("in", "not_in"):
        inside = Q(**{f"{alias}__in": list(test.operand)})
        return present & (inside if test.kind == "in" else ~inside)
    if test.kind == "range":
        low, high = (moment.resolve(end, field_type) for end in test.operand)
        return present & Q(**{f"{alias}__gte": low, f"{alias}__lte": high})
    if test.kind == "text_contains":
        # StrIndex (instr/strpos) is case-sensitive on every database, as Python's `in` is.
        return present & Q(GreaterThan(StrIndex(F(alias), Value(test.operand)), 0))
    if test.kind == "list_contains":
        return Q(JSONArrayContains(F(alias), test.operand))
    raise ValueError(f"Unknown test kind {test.kind!r}")
