"""The public entry points: compile_criteria(), load_criteria() and Criteria."""

from .compiler import Moment, bind
from .errors import CriteriaError
from .evaluate import Explanation, evaluate
from .nodes import MAX_LENGTH, check_limits, from_json, to_json, to_text
from .parser import parse
from .registry import SUBJECTS
from .sql import annotate_queryset, filter_queryset


class Criteria:
    """A validated criteria for one subject in one tenant.

    Build it with compile_criteria() or load_criteria(). `text` is the
    canonical text and `json` the form to store; `filter()` narrows a
    queryset in one SQL query and `matches()`/`explain()` evaluate one
    object in Python, with the same answer. `now` defaults to the current
    time; pass it to evaluate several things at one instant.
    """

    def __init__(self, tree, *, subject, tenant):
        self.tree = tree
        self.subject = subject
        self.tenant = tenant
        self.bound = bind(tree, subject=subject, tenant=tenant)

    @property
    def text(self):
        return to_text(self.tree)

    @property
    def json(self):
        return to_json(self.tree)

    def with_related(self, queryset):
        """`queryset` with the relations `explain()` reads joined in, so explaining its objects costs no query each."""
        paths = {path for bound in self.bound.values() for test in bound.tests for path in test.field.related}
        # select_related() without paths would join every foreign key.
        return queryset.select_related(*sorted(paths)) if paths else queryset

    def filter(self, queryset, *, now=None):
        return filter_queryset(self, queryset, Moment.of(self.tenant, now))

    def matches(self, obj, *, now=None):
        return self.explain(obj, now=now).passed

    def explain(self, obj, *, now=None):
        results = []
        passed = evaluate(self, obj, Moment.of(self.tenant, now), results)
        return Explanation(passed=passed, clauses=results)

    def __repr__(self):
        return f"<Criteria {self.subject}: {self.text}>"


def annotate_matches(queryset, named_criteria, *, now=None):
    """`queryset` annotated, for each `{name: criteria}`, with whether the row matches: one query for many criteria.

    What evaluating every alert rule over a chunk of accounts needs, where a
    `filter()` per criteria would read the same rows once per rule. The
    criteria must be of the queryset's subject.
    """
    for name, criteria in named_criteria.items():
        queryset = annotate_queryset(criteria, queryset, name, Moment.of(criteria.tenant, now))
    return queryset


def _check_subject(subject):
    if subject not in SUBJECTS:
        raise CriteriaError(f"Unknown criteria subject {subject!r}; expected one of {', '.join(SUBJECTS)}.")


def compile_criteria(text, *, subject="account", tenant):
    """Parse and validate `text` against the fields `tenant` has for `subject`; raises CriteriaError."""
    _check_subject(subject)
    return Criteria(parse(text), subject=subject, tenant=tenant)


def load_criteria(data, *, subject="account", tenant):
    """The Criteria stored as `data` (Criteria.json), validated again; raises CriteriaError."""
    _check_subject(subject)
    tree = from_json(data)
    check_limits(tree)
    text = to_text(tree)
    if len(text) > MAX_LENGTH:
        raise CriteriaError(f"Criteria may be at most {MAX_LENGTH} characters long; this one has {len(text)}.")
    return Criteria(tree, subject=subject, tenant=tenant)
