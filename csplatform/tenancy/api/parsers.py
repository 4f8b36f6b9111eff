"""The API's one JSON parser (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES; ingest adds its size limits on top)."""

import math

from rest_framework import exceptions, parsers
from rest_framework.utils import json

# Far deeper than any documented body (criteria nest at most 20 levels) and
# far below the interpreter's recursion limit, so that no code walking the
# parsed data recursively (serializers, criteria, error flattening) can
# overflow the stack.
MAX_DEPTH = 100


class JSONParser(parsers.BaseParser):
    """Strict JSON (no NaN or Infinity, no number past a float's range) nested at most MAX_DEPTH levels.

    Anything else is a 400. A number such as 1e400 would otherwise arrive as
    infinity, which no column stores and no JSON answer can carry.

    Python's decoder raises RecursionError on a valid document a few
    thousand levels deep (about 5 KB of brackets); that is the client's
    input, never a server fault. Not a subclass of DRF's JSONParser, which
    DRF feeds the whole body at once: ingest's subclass reads its body under
    a byte limit and hands it to `loads`.
    """

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        return self.loads(stream.read(), parser_context or {})

    def loads(self, body, parser_context):
        try:
            data = json.loads(body.decode(parsers.get_encoding(parser_context)), parse_float=finite_float)
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            raise too_deep() from None
        if nests_deeper_than(data, MAX_DEPTH):
            raise too_deep()
        return data


def finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is out of range")
    return value


def too_deep():
    return exceptions.ParseError(f"JSON parse error - the document nests deeper than {MAX_DEPTH} levels.")


def nests_deeper_than(data, limit):
    """Whether lists and objects in `data` nest more than `limit` levels; iterative, so any depth is safe."""
    stack = [(data, 1)] if isinstance(data, (dict, list)) else []
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False
