"""Criteria evaluated in Python for one object, with an explanation per clause.

Mirrors sql.py test for test; the property test in tests/rules holds the two
to the same answers.
"""

import datetime as dt
import json
import operator
from dataclasses import asdict, dataclass
from decimal import Decimal

from csplatform.tenancy.timezones import tenant_zone

from .nodes import WITHIN_OPS, And, Clause, Not, Relative, clause_text, literal_text, value_text
from .registry import FieldType

OPERATORS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class ClauseResult:
    text: str
    field: str
    value: object
    expected: str
    passed: bool

    def as_text(self):
        seen = "not set" if self.value is None else _show(self.value)
        return f"{self.field} is {seen} (needs {self.expected}): {'passed' if self.passed else 'failed'}"


@dataclass(frozen=True)
class Explanation:
    passed: bool
    clauses: list

    def as_text(self):
        lines = [clause.as_text() for clause in self.clauses]
        lines.append(f"Overall: {'passed' if self.passed else 'failed'}.")
        return "\n".join(lines)

    def as_dict(self):
        return {"passed": self.passed, "clauses": [asdict(clause) for clause in self.clauses]}


def normalise(value, field_type):
    """A field's Python value as sql.field_expression() reads it: numbers as floats, empty text as missing."""
    if value is None:
        return None
    if field_type == FieldType.NUMBER:
        return float(value)
    if field_type == FieldType.STRING:
        return str(value) or None
    return value


def evaluate(criteria, obj, moment, results):
    """Whether `obj` matches; appends a ClauseResult per clause to `results`."""
    return _node(criteria.tree, criteria, obj, moment, results)


def _node(node, criteria, obj, moment, results):
    if isinstance(node, Clause):
        return _clause(node, criteria, obj, moment, results)
    if isinstance(node, Not):
        return not _node(node.arg, criteria, obj, moment, results)
    # Every branch is evaluated (no short circuit) so the explanation lists every clause.
    outcomes = [_node(arg, criteria, obj, moment, results) for arg in node.args]
    return all(outcomes) if isinstance(node, And) else any(outcomes)


def _clause(node, criteria, obj, moment, results):
    bound = criteria.bound[id(node)]
    seen = None
    passed = False
    for test in bound.tests:
        value = normalise(test.field.value(obj, criteria.tenant), test.field.type)
        seen = value if seen is None else seen
        passed = passed or _test(test, value, moment)
    passed = passed != bound.negate
    expected = _expected(node, bound.tests[0], criteria.tenant, moment)
    results.append(ClauseResult(clause_text(node), node.field, _jsonable(seen), expected, passed))
    return passed


def _test(test, value, moment):
    if value is None:
        return False
    if test.kind == "exists":
        return True
    if test.kind == "cmp":
        return OPERATORS[test.op](value, moment.resolve(test.operand, test.field.type))
    if test.kind == "in":
        return value in test.operand
    if test.kind == "not_in":
        return value not in test.operand
    if test.kind == "range":
        low, high = (moment.resolve(end, test.field.type) for end in test.operand)
        return low <= value <= high
    if test.kind == "text_contains":
        return test.operand in value
    if test.kind == "list_contains":
        return isinstance(value, list) and any(isinstance(item, str) and item == test.operand for item in value)
    raise ValueError(f"Unknown test kind {test.kind!r}")


def _expected(node, test, tenant, moment):
    """The clause without its field, plus the dates a relative value stands for today."""
    text = clause_text(node)[len(node.field) + 1 :]
    field_type = test.field.type
    if node.op in WITHIN_OPS:
        low, high = (_moment_text(moment.resolve(end, field_type), tenant) for end in test.operand)
        return f"{text} ({low} to {high})"
    if isinstance(node.value, Relative):
        return f"{text} ({_moment_text(moment.resolve(node.value, field_type), tenant)})"
    return text


def _moment_text(value, tenant):
    if isinstance(value, dt.datetime):
        return value.astimezone(tenant_zone(tenant)).strftime("%Y-%m-%d %H:%M")
    return value.isoformat()


def _jsonable(value):
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, bool | int | float | str | type(None)):
        return value
    return json.loads(json.dumps(value, default=str))


def _show(value):
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool | str):
        return literal_text(value)
    return value_text(value)
