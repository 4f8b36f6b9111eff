"""The fields that criteria can read, registered by the apps that own them.

`rules` sits low in the dependency order, so it cannot import lifecycle,
health or metrics. Those apps register their fields here from their
`AppConfig.ready()`; the criteria compiler only ever looks fields up here.

A field is either registered by its full name (`register_field`) or
resolved on demand under a prefix (`register_namespace`), for families
whose members depend on the tenant, such as `metric.<key>`.
"""

import contextlib
import enum
from dataclasses import dataclass, replace
from typing import Any, Callable

SUBJECTS = ("account", "contact")


class FieldType(enum.Enum):
    NUMBER = "number"
    STRING = "string"
    BOOL = "bool"
    DATE = "date"
    DATETIME = "datetime"
    LIST = "list"  # a list of strings
    # A value whose type is only known per row (a JSON attribute). The
    # literal it is compared with decides how it is read, see `Field.typed`.
    ANY = "any"


@dataclass(frozen=True)
class Field:
    """One readable value of a subject (an Account or a Contact).

    `expression(tenant)` returns a Django expression that can be used in
    `.alias()`/`.annotate()` on the subject's queryset; `value(obj, tenant)`
    returns the same value in Python for one object. The two must agree:
    the property test of the criteria language holds them to it. A missing
    value is `None` in Python and NULL in SQL.

    Fields of type ANY give `typed(field_type) -> Field`, the same value
    read as the given type (None/NULL where the row's value is not of it).

    `related` names the relations `value` reads, as `select_related` paths:
    objects read to be explained carry them instead of a query each
    (`Criteria.with_related`).
    """

    name: str
    subject: str
    type: FieldType
    label: str
    expression: Callable[[Any], Any]
    value: Callable[[Any, Any], Any]
    description: str = ""
    typed: Callable[[FieldType], "Field"] | None = None
    related: tuple[str, ...] = ()


@dataclass(frozen=True)
class Namespace:
    prefix: str
    subject: str
    resolve: Callable[[Any, str], Field | None]
    list_fields: Callable[[Any], list[Field]]


_fields: dict[tuple[str, str], Field] = {}
_namespaces: dict[tuple[str, str], Namespace] = {}


def _check_subject(subject):
    if subject not in SUBJECTS:
        raise ValueError(f"Unknown criteria subject {subject!r}; expected one of {', '.join(SUBJECTS)}.")


def register_field(field):
    """Make `field` readable by criteria of its subject.

    Registering a name again replaces the earlier field, so a module that
    registers in `ready()` may safely run twice (autoreload, test setups).
    """
    _check_subject(field.subject)
    _fields[(field.subject, field.name)] = field
    return field


def unregister_field(name, *, subject="account"):
    _fields.pop((subject, name), None)


def register_namespace(*, prefix, subject, resolve, list_fields):
    """Resolve every `<prefix>.<rest>` name of `subject` through `resolve(tenant, rest)`.

    `resolve` receives the part of the name after the prefix and the dot
    (`logins_30d` for `metric.logins_30d`) and returns a Field whose `name`
    is the full name, or None when the tenant has no such field.
    `list_fields(tenant)` lists the fields an editor may offer.
    """
    _check_subject(subject)
    namespace = Namespace(prefix=prefix, subject=subject, resolve=resolve, list_fields=list_fields)
    _namespaces[(subject, prefix)] = namespace
    return namespace


def unregister_namespace(prefix, *, subject="account"):
    _namespaces.pop((subject, prefix), None)


@contextlib.contextmanager
def overridden_fields(*fields, namespaces=()):
    """Register `fields` and `namespaces` (keyword dicts for register_namespace) for a block, then restore.

    For tests and previews that need fields no app registers; whatever was
    registered under the same names before comes back afterwards.
    """
    saved_fields, saved_namespaces = dict(_fields), dict(_namespaces)
    try:
        for field in fields:
            register_field(field)
        for namespace in namespaces:
            register_namespace(**namespace)
        yield
    finally:
        _fields.clear()
        _fields.update(saved_fields)
        _namespaces.clear()
        _namespaces.update(saved_namespaces)


def resolve_field(name, *, subject, tenant):
    """The field called `name` for criteria of `subject` in `tenant`, or None.

    Exact registrations win over namespaces, and a longer prefix over a
    shorter one. Contact criteria may also read every account field; those
    read the contact's account.
    """
    _check_subject(subject)
    field = _fields.get((subject, name))
    if field is not None:
        return field
    namespaces = sorted(
        (ns for (ns_subject, _), ns in _namespaces.items() if ns_subject == subject),
        key=lambda ns: len(ns.prefix),
        reverse=True,
    )
    for namespace in namespaces:
        if name.startswith(namespace.prefix + "."):
            rest = name[len(namespace.prefix) + 1 :]
            field = namespace.resolve(tenant, rest) if rest else None
            if field is not None:
                return field
    if subject == "contact":
        account_field = resolve_field(name, subject="account", tenant=tenant)
        return contact_view_of_account_field(account_field, tenant) if account_field else None
    return None


def fields_for(subject, tenant):
    """Every field a criteria of `subject` may read in `tenant`, sorted by name (for editors)."""
    _check_subject(subject)
    found = {field.name: field for (field_subject, _), field in _fields.items() if field_subject == subject}
    for (ns_subject, _), namespace in _namespaces.items():
        if ns_subject == subject:
            for field in namespace.list_fields(tenant):
                found.setdefault(field.name, field)
    if subject == "contact":
        for field in fields_for("account", tenant):
            found.setdefault(field.name, contact_view_of_account_field(field, tenant))
    return sorted(found.values(), key=lambda field: field.name)


def contact_view_of_account_field(field, tenant):
    """An account field read from a contact: the value of the contact's account.

    The SQL side is a correlated subquery on the account, so any account
    expression (joins, aggregates, subqueries) keeps working unchanged.
    """
    from django.db.models import OuterRef, Subquery

    from csplatform.customers.models import Account

    def expression(tenant):
        accounts = Account.objects.for_tenant(tenant).filter(pk=OuterRef("account_id"))
        return Subquery(accounts.annotate(_value=field.expression(tenant)).values("_value")[:1])

    def value(contact, tenant):
        return field.value(contact.account, tenant)

    typed = None
    if field.typed is not None:

        def typed(field_type):
            return contact_view_of_account_field(field.typed(field_type), tenant)

    return replace(field, subject="contact", expression=expression, value=value, typed=typed)
