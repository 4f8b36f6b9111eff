"""Criteria text -> syntax tree (nodes.py), with positions for error messages.

Lark parses with LALR (no recursion, so deep input cannot overflow the
stack); the tree is converted by a recursive walk that stops at the nesting
limit. Every lark error leaves this module as a CriteriaError.
"""

import functools
import json
import math

from lark import Lark, Token
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from .errors import CriteriaError
from .grammar import GRAMMAR
from .nodes import MAX_DEPTH, MAX_LENGTH, And, Clause, Not, Or, Pos, Relative, check_limits, days_error, depth_error


@functools.cache
def _parser():
    return Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def parse(text):
    """The syntax tree of `text` (fields are not checked here, see compiler.py)."""
    if not isinstance(text, str):
        raise CriteriaError("Criteria must be text.")
    if len(text) > MAX_LENGTH:
        raise CriteriaError(f"Criteria may be at most {MAX_LENGTH} characters long; this one has {len(text)}.")
    if not text.strip():
        raise CriteriaError("Criteria are empty; write a condition such as account.plan == \"pro\".")
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as error:
        raise _syntax_error(error, text) from None
    except LarkError as error:
        raise CriteriaError(f"The criteria could not be read ({error.__class__.__name__}).") from None
    node = _convert(tree, depth=0)
    check_limits(node)
    return node


def _pos(item):
    if isinstance(item, Token):
        return Pos(item.start_pos, item.line, item.column)
    return Pos(item.meta.start_pos, item.meta.line, item.meta.column)


def _convert(tree, depth):
    kind = tree.data
    if kind in ("or_expr", "and_expr", "not_"):
        if depth >= MAX_DEPTH:
            raise depth_error(_pos(tree))
        children = [_convert(child, depth + 1) for child in tree.children]
        if kind == "not_":
            return Not(children[0])
        return (Or if kind == "or_expr" else And)(children)
    return _clause(tree)


def _clause(tree):
    field_tree, *rest = tree.children
    name = ".".join(str(token) for token in field_tree.children)
    pos = _pos(field_tree)
    kind = tree.data
    if kind == "exists":
        return Clause(name, "exists", pos=pos)
    if kind == "not_exists":
        return Clause(name, "not exists", pos=pos)
    if kind in ("within", "within_last"):
        op = "within" if kind == "within" else "within last"
        return Clause(name, op, _days(rest[0]), pos=pos)
    if kind in ("in_", "not_in"):
        op = "in" if kind == "in_" else "not in"
        values = [_literal(item) for item in rest[0].children]
        if not values:
            raise CriteriaError.at(_pos(rest[0]), f"The list after '{op}' is empty.", field=name)
        return Clause(name, op, values, pos=pos)
    if kind == "contains":
        return Clause(name, "contains", _literal(rest[0]), pos=pos)
    operator, value_tree = str(rest[0]), rest[1]
    if value_tree.data in ("days_ago", "days_from_now"):
        value = Relative(_days(value_tree.children[0]), future=value_tree.data == "days_from_now")
        return Clause(name, operator, value, pos=pos)
    value = _literal(value_tree)
    if value is None:
        # `x == null` is spelt `x not exists` in canonical text; any other use of null is an error.
        if operator == "==":
            return Clause(name, "not exists", pos=pos)
        if operator == "!=":
            return Clause(name, "exists", pos=pos)
        message = f"null can only be compared with == or !=; use '{name} exists'."
        raise CriteriaError.at(_pos(value_tree), message, field=name)
    return Clause(name, operator, value, pos=pos)


def _days(token):
    text = str(token)
    days = int(text) if text.isdigit() else text
    if error := days_error(days, _pos(token)):
        raise error
    return days


def _literal(tree):
    kind = tree.data
    if kind == "true":
        return True
    if kind == "false":
        return False
    if kind == "null":
        return None
    token = tree.children[0]
    if kind == "string":
        try:
            return json.loads(str(token), strict=False)
        except ValueError:
            raise CriteriaError.at(_pos(token), f"The string {token} has an invalid escape sequence.") from None
    text = str(token)
    number = float(text) if any(c in text for c in ".eE") else int(text)
    if not math.isfinite(number):
        raise CriteriaError.at(_pos(token), f"The number {text} is too large.")
    return number


_TOKEN_NAMES = {
    "$END": "the end of the criteria",
    "NAME": "a field name",
    "NUMBER": "a number",
    "STRING": "a string",
    "CMP": "a comparison (==, !=, <, <=, >, >=)",
    "_DAYS": "'days'",
}


def _expected(error):
    names = set()
    for terminal in getattr(error, "expected", None) or getattr(error, "allowed", None) or ():
        if terminal in _TOKEN_NAMES:
            names.add(_TOKEN_NAMES[terminal])
            continue
        pattern = _parser().get_terminal(terminal).pattern
        names.add(f"'{pattern.value}'" if pattern.type == "str" else terminal.lower())
    return sorted(names)


def _syntax_error(error, text):
    position, line, column = error.pos_in_stream, error.line, error.column
    if isinstance(error, UnexpectedEOF) or (isinstance(error, UnexpectedToken) and error.token.type == "$END"):
        found = "the criteria end too early"
        position, line, column = _end_position(text)
    elif isinstance(error, UnexpectedCharacters):
        found = f"unexpected character {text[position]!r}"
        if text[position] == "=":
            found += " (use == to compare)"
    else:
        found = f"unexpected '{error.token}'"
    expected = _expected(error)
    message = f"{found[0].upper()}{found[1:]}"
    if expected:
        message += f"; expected {', '.join(expected[:-1]) + ' or ' + expected[-1] if len(expected) > 1 else expected[0]}"
    return CriteriaError(message + ".", position=position, line=line, column=column)


def _end_position(text):
    lines = text.split("\n")
    return len(text), len(lines), len(lines[-1]) + 1
