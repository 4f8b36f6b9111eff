"""The criteria language: parse, validate, compile to SQL, evaluate and explain in Python.

See criteria.py for the entry points and registry.py for how apps add fields.
"""

from .criteria import Criteria, annotate_matches, compile_criteria, load_criteria
from .errors import CriteriaError
from .evaluate import ClauseResult, Explanation
from .registry import (
    Field,
    FieldType,
    fields_for,
    overridden_fields,
    register_field,
    register_namespace,
    resolve_field,
    unregister_field,
    unregister_namespace,
)

__all__ = [
    "ClauseResult",
    "Criteria",
    "CriteriaError",
    "Explanation",
    "Field",
    "FieldType",
    "annotate_matches",
    "compile_criteria",
    "fields_for",
    "load_criteria",
    "overridden_fields",
    "register_field",
    "register_namespace",
    "resolve_field",
    "unregister_field",
    "unregister_namespace",
]
