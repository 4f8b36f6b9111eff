"""The criteria syntax tree, its stored JSON form and its canonical text.

Stored JSON, one object per node:

    {"op": "and", "args": [node, ...]}        {"op": "or", "args": [...]}
    {"op": "not", "arg": node}
    {"op": "==" | "!=" | "<" | "<=" | ">" | ">=", "field": "account.mrr", "value": 10}
        value: a string, number or boolean, or {"days_ago": 14} / {"days_from_now": 3}
    {"op": "in" | "not in", "field": ..., "values": [...]}
    {"op": "contains", "field": ..., "value": "text"}
    {"op": "exists" | "not exists", "field": ...}
    {"op": "within" | "within last", "field": ..., "days": 3}
"""

import json
import math
import re
from dataclasses import dataclass, field

from .errors import CriteriaError

MAX_LENGTH = 2000
MAX_DEPTH = 20
MAX_CLAUSES = 100
MAX_DAYS = 36500

COMPARE_OPS = ("==", "!=", "<", "<=", ">", ">=")
LIST_OPS = ("in", "not in")
EXISTS_OPS = ("exists", "not exists")
WITHIN_OPS = ("within", "within last")
CLAUSE_OPS = (*COMPARE_OPS, *LIST_OPS, "contains", *EXISTS_OPS, *WITHIN_OPS)

FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class Pos:
    offset: int
    line: int
    column: int


@dataclass(frozen=True)
class Relative:
    """`N days ago` (future=False) or `N days from now` (future=True)."""

    days: int
    future: bool


@dataclass
class Clause:
    field: str
    op: str
    value: object = None
    pos: Pos | None = field(default=None, compare=False)


@dataclass
class And:
    args: list


@dataclass
class Or:
    args: list


@dataclass
class Not:
    arg: object


def clauses(node):
    """Every clause of the tree, left to right (iterative: trees may be deep before validation)."""
    stack = [node]
    found = []
    while stack:
        current = stack.pop()
        if isinstance(current, Clause):
            found.append(current)
        elif isinstance(current, Not):
            stack.append(current.arg)
        else:
            stack.extend(reversed(current.args))
    return found


def check_limits(node):
    count = len(clauses(node))
    if count > MAX_CLAUSES:
        raise CriteriaError(f"Criteria may have at most {MAX_CLAUSES} conditions; this one has {count}.")


def depth_error(pos=None):
    return CriteriaError.at(pos, f"Criteria may nest and/or/not at most {MAX_DEPTH} levels deep.")


def is_literal(value):
    if isinstance(value, bool | str):
        return True
    return isinstance(value, int | float) and math.isfinite(value)


def days_error(days, pos=None):
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_DAYS:
        return CriteriaError.at(pos, f"A number of days must be a whole number from 0 to {MAX_DAYS}, not {days!r}.")
    return None


# JSON ---------------------------------------------------------------------


def to_json(node):
    if isinstance(node, And | Or):
        return {"op": "and" if isinstance(node, And) else "or", "args": [to_json(arg) for arg in node.args]}
    if isinstance(node, Not):
        return {"op": "not", "arg": to_json(node.arg)}
    data = {"op": node.op, "field": node.field}
    if node.op in LIST_OPS:
        data["values"] = list(node.value)
    elif node.op in WITHIN_OPS:
        data["days"] = node.value
    elif isinstance(node.value, Relative):
        data["value"] = {"days_from_now" if node.value.future else "days_ago": node.value.days}
    elif node.op not in EXISTS_OPS:
        data["value"] = node.value
    return data


def from_json(data, depth=0):
    """The tree of stored criteria; raises CriteriaError on any malformed part."""
    if not isinstance(data, dict) or data.get("op") not in ("and", "or", "not", *CLAUSE_OPS):
        raise CriteriaError(f"Stored criteria are malformed: {_short(data)} is not a criteria node.")
    op = data["op"]
    if op in ("and", "or", "not"):
        if depth >= MAX_DEPTH:
            raise depth_error()
        if op == "not":
            return Not(from_json(data.get("arg"), depth + 1))
        args = data.get("args")
        if not isinstance(args, list) or len(args) < 2:
            raise CriteriaError(f"Stored criteria are malformed: '{op}' needs a list of at least two conditions.")
        node_class = And if op == "and" else Or
        return node_class([from_json(arg, depth + 1) for arg in args])
    name = data.get("field")
    if not isinstance(name, str) or not FIELD_NAME.fullmatch(name):
        raise CriteriaError(f"Stored criteria are malformed: {_short(name)} is not a field name.")
    if op in EXISTS_OPS:
        return Clause(name, op)
    if op in WITHIN_OPS:
        days = data.get("days")
        if error := days_error(days):
            raise error
        return Clause(name, op, days)
    if op in LIST_OPS:
        values = data.get("values")
        if not isinstance(values, list) or not all(is_literal(value) for value in values):
            raise CriteriaError(f"Stored criteria are malformed: '{op}' on {name} needs a list of literals.")
        return Clause(name, op, list(values))
    value = data.get("value")
    if isinstance(value, dict) and op in COMPARE_OPS and len(value) == 1:
        (key, days), = value.items()
        if key in ("days_ago", "days_from_now"):
            if error := days_error(days):
                raise error
            return Clause(name, op, Relative(days, future=key == "days_from_now"))
    if not is_literal(value):
        raise CriteriaError(f"Stored criteria are malformed: {_short(value)} is not a value for {name}.")
    return Clause(name, op, value)


def _short(value):
    text = json.dumps(value, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


# Text ---------------------------------------------------------------------


def literal_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def value_text(value):
    if isinstance(value, Relative):
        unit = "day" if value.days == 1 else "days"
        return f"{value.days} {unit} {'from now' if value.future else 'ago'}"
    return literal_text(value)


def clause_text(clause):
    if clause.op in EXISTS_OPS:
        return f"{clause.field} {clause.op}"
    if clause.op in LIST_OPS:
        return f"{clause.field} {clause.op} [{', '.join(literal_text(v) for v in clause.value)}]"
    if clause.op in WITHIN_OPS:
        unit = "day" if clause.value == 1 else "days"
        return f"{clause.field} {clause.op} {clause.value} {unit}"
    return f"{clause.field} {clause.op} {value_text(clause.value)}"


def to_text(node):
    """Canonical text: parsing it gives the same tree back."""
    if isinstance(node, Clause):
        return clause_text(node)
    if isinstance(node, Not):
        return f"not ({to_text(node.arg)})"
    joiner = " and " if isinstance(node, And) else " or "
    parts = []
    for arg in node.args:
        text = to_text(arg)
        # `and` binds tighter than `or`; nested groups of either keep their parentheses.
        parts.append(f"({text})" if isinstance(arg, And | Or) else text)
    return joiner.join(parts)
