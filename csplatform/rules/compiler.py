"""Validate a criteria tree against the registered fields and bind each clause to tests.

A bound clause is one or more `Test`s (OR'ed) that both evaluators run: the
SQL one in sql.py and the Python one in evaluate.py. Keeping the test list
the single description of a clause is what lets the two paths agree.

Missing values: a test on a missing value (NULL, unset, empty text, or a JSON
attribute whose value is not of the literal's type) is false, whatever the
operator: `account.plan != "pro"` does not match an account without a plan.
`not` negates that two-valued result, so `not (account.mrr > 5)` matches an
account without an mrr. `exists` is the way to ask for a value.
"""

import datetime as dt
import difflib
from dataclasses import dataclass

from django.utils import timezone

from csplatform.tenancy.timezones import tenant_zone

from .errors import CriteriaError
from .nodes import COMPARE_OPS, EXISTS_OPS, LIST_OPS, WITHIN_OPS, Clause, Relative, clauses, literal_text
from .registry import FieldType, fields_for, resolve_field

TYPE_NAMES = {
    FieldType.NUMBER: "a number",
    FieldType.STRING: "text",
    FieldType.BOOL: "true or false",
    FieldType.DATE: "a date",
    FieldType.DATETIME: "a date and time",
    FieldType.LIST: "a list of text",
    FieldType.ANY: "an attribute (its type depends on the value compared)",
}
DATE_TYPES = (FieldType.DATE, FieldType.DATETIME)
ORDERED_TYPES = (FieldType.NUMBER, *DATE_TYPES)


@dataclass(frozen=True)
class Test:
    """One check of one field. `kind` is one of:

    cmp (operand is a value, a date or a Relative), in, not_in (operand is a
    list), text_contains, list_contains (operand is a string), exists, and
    range (operand is a pair of Relatives, both ends included).
    """

    kind: str
    field: object
    op: str | None = None
    operand: object = None


@dataclass(frozen=True)
class BoundClause:
    clause: Clause
    tests: tuple
    negate: bool = False


def literal_type(value):
    if isinstance(value, bool):
        return FieldType.BOOL
    if isinstance(value, str):
        return FieldType.STRING
    return FieldType.NUMBER


def bind(tree, *, subject, tenant):
    """{id(clause): BoundClause} for every clause of the tree, or CriteriaError on the first problem."""
    return {id(clause): _bind_clause(clause, subject, tenant) for clause in clauses(tree)}


def _bind_clause(clause, subject, tenant):
    field = resolve_field(clause.field, subject=subject, tenant=tenant)
    if field is None:
        raise _unknown_field(clause, subject, tenant)
    op = clause.op
    if op in EXISTS_OPS:
        return BoundClause(clause, (Test("exists", field),), negate=op == "not exists")
    if op in WITHIN_OPS:
        _require(clause, field, field.type in DATE_TYPES, f"'{op}' needs a date field")
        days = clause.value
        if op == "within":
            bounds = (Relative(0, future=True), Relative(days, future=True))
        else:
            bounds = (Relative(days, future=False), Relative(0, future=False))
        return BoundClause(clause, (Test("range", field, op, bounds),))
    if op == "contains":
        _require(clause, field, isinstance(clause.value, str), "'contains' needs a string such as \"text\"")
        if field.type == FieldType.ANY:
            tests = (
                Test("text_contains", field.typed(FieldType.STRING), op, clause.value),
                Test("list_contains", field.typed(FieldType.LIST), op, clause.value),
            )
            return BoundClause(clause, tests)
        _require(clause, field, field.type in (FieldType.STRING, FieldType.LIST), "'contains' needs text or a list")
        kind = "text_contains" if field.type == FieldType.STRING else "list_contains"
        return BoundClause(clause, (Test(kind, field, op, clause.value),))
    if op in LIST_OPS:
        types = {literal_type(value) for value in clause.value}
        _require(clause, field, len(types) == 1, f"the list after '{op}' must hold values of one type")
        field = _typed(clause, field, types.pop())
        _require(clause, field, field.type in (FieldType.NUMBER, FieldType.STRING), f"'{op}' needs a number or text field")
        values = tuple(_operand(clause, field, value, tenant) for value in clause.value)
        return BoundClause(clause, (Test("in" if op == "in" else "not_in", field, op, values),))
    if op not in COMPARE_OPS:
        raise CriteriaError.at(clause.pos, f"Unknown operator '{op}'.", field=clause.field)
    value = clause.value
    if isinstance(value, Relative):
        _require(clause, field, field.type in DATE_TYPES, "'days ago' and 'days from now' need a date field")
    else:
        field = _typed(clause, field, literal_type(value))
    if op not in ("==", "!="):
        _require(clause, field, field.type in ORDERED_TYPES, f"'{op}' needs a number or a date")
    _require(clause, field, field.type != FieldType.LIST, "a list field is tested with 'contains'")
    return BoundClause(clause, (Test("cmp", field, op, _operand(clause, field, value, tenant)),))


def _typed(clause, field, value_type):
    """The field read as `value_type` when its type is only known per value (JSON attributes)."""
    if field.type != FieldType.ANY:
        return field
    readable = value_type in (FieldType.NUMBER, FieldType.STRING, FieldType.BOOL)
    _require(clause, field, readable, "compare it with a number, a string or true/false")
    return field.typed(value_type)


def _operand(clause, field, value, tenant):
    """The literal as the field's type; date fields take ISO dates such as "2025-01-31"."""
    if isinstance(value, Relative):
        return value
    if field.type in DATE_TYPES and isinstance(value, str):
        return _parse_date(clause, field, value, tenant)
    expected = {FieldType.NUMBER: FieldType.NUMBER, FieldType.STRING: FieldType.STRING, FieldType.BOOL: FieldType.BOOL}
    _require(
        clause,
        field,
        expected.get(field.type) == literal_type(value),
        f"it cannot be compared with {TYPE_NAMES[literal_type(value)]} ({literal_text(value)})",
    )
    return float(value) if field.type == FieldType.NUMBER else value


def _parse_date(clause, field, text, tenant):
    try:
        if field.type == FieldType.DATE:
            return dt.date.fromisoformat(text)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        example = '"2025-01-31"' if field.type == FieldType.DATE else '"2025-01-31T09:00:00Z"'
        raise CriteriaError.at(
            clause.pos, f"{text!r} is not a date for {clause.field}; write it as {example}.", field=clause.field
        ) from None
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, tenant_zone(tenant))


def _require(clause, field, condition, reason):
    if not condition:
        raise CriteriaError.at(
            clause.pos, f"{clause.field} is {TYPE_NAMES[field.type]}; {reason}.", field=clause.field
        )


def _unknown_field(clause, subject, tenant):
    names = [field.name for field in fields_for(subject, tenant)]
    close = difflib.get_close_matches(clause.field, names, n=3, cutoff=0.85)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    return CriteriaError.at(clause.pos, f"Unknown field {clause.field} for {subject} criteria.{hint}", field=clause.field)


@dataclass(frozen=True)
class Moment:
    """The instant a criteria is evaluated at, and that day in the tenant's time zone.

    Relative values ("14 days ago") are computed once from it, in Python, so
    the SQL and the Python evaluation of one run compare with the same value.
    """

    now: dt.datetime
    today: dt.date

    @classmethod
    def of(cls, tenant, now=None):
        now = now or timezone.now()
        return cls(now=now, today=now.astimezone(tenant_zone(tenant)).date())

    def resolve(self, operand, field_type):
        if not isinstance(operand, Relative):
            return operand
        delta = dt.timedelta(days=operand.days if operand.future else -operand.days)
        return self.today + delta if field_type == FieldType.DATE else self.now + delta
