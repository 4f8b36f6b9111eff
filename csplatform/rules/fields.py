"""The Account and Contact fields criteria can read, and their JSON attributes.

`customers` sits below `rules` and cannot register its own fields, so they
are registered here when the rules app is ready. Contact criteria read
`account.*` through the registry's contact view of account fields.
"""

import re
from dataclasses import replace

from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    F,
    FloatField,
    JSONField,
    OuterRef,
    Q,
    Subquery,
    TextField,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast, Coalesce, NullIf
from django.db.models.lookups import Exact, Regex

from csplatform.customers.models import Contact

from .expressions import JSONKind
from .registry import Field, FieldType, register_field, register_namespace

# Text attributes that read as numbers ("12", "-3.5"); bounded so that every
# database converts them to the same float. \A and \Z mean the same in
# Python and PostgreSQL regular expressions.
NUMERIC_TEXT = r"\A-?[0-9]{1,9}(\.[0-9]{1,6})?\Z"
_NUMERIC_TEXT = re.compile(NUMERIC_TEXT)

ACCOUNT_FIELDS = [
    ("external_id", FieldType.STRING, "External id"),
    ("name", FieldType.STRING, "Name"),
    ("domain", FieldType.STRING, "Domain"),
    ("plan", FieldType.STRING, "Plan"),
    ("mrr", FieldType.NUMBER, "MRR"),
    ("currency", FieldType.STRING, "Currency"),
    ("signup_date", FieldType.DATE, "Signup date"),
    ("trial_ends_at", FieldType.DATETIME, "Trial ends at"),
    ("contract_start", FieldType.DATE, "Contract start"),
    ("renewal_date", FieldType.DATE, "Renewal date"),
    ("card_expires_at", FieldType.DATE, "Card expires on"),
    ("created_at", FieldType.DATETIME, "Created at"),
]

CONTACT_FIELDS = [
    ("email", FieldType.STRING, "Email"),
    ("name", FieldType.STRING, "Name"),
    ("title", FieldType.STRING, "Title"),
    ("role", FieldType.STRING, "Role"),
    ("last_seen_at", FieldType.DATETIME, "Last seen at"),
    ("unsubscribed", FieldType.BOOL, "Unsubscribed"),
]


def model_field(subject, attname, field_type, label):
    """A field that is a column of the subject's model."""
    return Field(
        name=f"{subject}.{attname}",
        subject=subject,
        type=field_type,
        label=label,
        expression=lambda tenant: F(attname),
        value=lambda obj, tenant: getattr(obj, attname),
    )


def _owner_email(account, tenant):
    return account.owner.email if account.owner_id else None


def _champions_expression(tenant):
    counted = Contact.objects.for_tenant(tenant).champions().filter(account_id=OuterRef("pk"))
    return Coalesce(Subquery(counted.order_by().values("account_id").annotate(count=Count("pk")).values("count")), 0)


def _champions_value(account, tenant):
    return Contact.objects.for_tenant(tenant).champions().filter(account_id=account.pk).count()


# JSON attributes -------------------------------------------------------------


def attribute_value(obj, key, field_type):
    """The Python reading of `obj.attributes[key]` as `field_type`; None where it is not of that type."""
    attributes = obj.attributes if isinstance(obj.attributes, dict) else {}
    value = attributes.get(key)
    if field_type == FieldType.NUMBER:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return float(value)
        return float(value) if isinstance(value, str) and _NUMERIC_TEXT.search(value) else None
    if field_type == FieldType.STRING:
        return value if isinstance(value, str) and value else None
    if field_type == FieldType.BOOL:
        return value if isinstance(value, bool) else None
    if field_type == FieldType.LIST:
        return value if isinstance(value, list) else None
    return None if value is None or value == "" else value


def attribute_expression(key, field_type):
    """The SQL reading of `attributes -> key` as `field_type`, NULL exactly where attribute_value is None."""
    kind = JSONKind("attributes", key)
    text = KeyTextTransform(key, "attributes")
    is_string = Exact(kind, Value("string"))
    if field_type == FieldType.NUMBER:
        return Case(
            When(Exact(kind, Value("number")), then=Cast(text, FloatField())),
            When(Q(is_string, Regex(text, Value(NUMERIC_TEXT))), then=Cast(text, FloatField())),
            output_field=FloatField(),
        )
    if field_type == FieldType.STRING:
        return Case(When(is_string, then=NullIf(text, Value(""))), output_field=TextField())
    if field_type == FieldType.BOOL:
        return Case(
            When(Exact(kind, Value("true")), then=Value(True)),
            When(Exact(kind, Value("false")), then=Value(False)),
            output_field=BooleanField(),
        )
    if field_type == FieldType.LIST:
        return Case(When(Exact(kind, Value("array")), then=KeyTransform(key, "attributes")), output_field=JSONField())
    # Present: any JSON value but null and the empty string.
    return Case(
        When(Q(is_string, Exact(text, Value(""))), then=Value(None)),
        When(Exact(kind, Value("null")), then=Value(None)),
        default=kind,
        output_field=CharField(),
    )


def attribute_field(subject, key, field_type=FieldType.ANY):
    field = Field(
        name=f"{subject}.attributes.{key}",
        subject=subject,
        type=field_type,
        label=f"Attribute {key}",
        expression=lambda tenant: attribute_expression(key, field_type),
        value=lambda obj, tenant: attribute_value(obj, key, field_type),
    )
    if field_type == FieldType.ANY:
        field = replace(field, typed=lambda as_type: attribute_field(subject, key, as_type))
    return field


def register_customer_fields():
    for attname, field_type, label in ACCOUNT_FIELDS:
        register_field(model_field("account", attname, field_type, label))
    for attname, field_type, label in CONTACT_FIELDS:
        register_field(model_field("contact", attname, field_type, label))
    register_field(
        Field(
            name="account.owner",
            subject="account",
            type=FieldType.STRING,
            label="Owner (email)",
            expression=lambda tenant: F("owner__email"),
            value=_owner_email,
            related=("owner",),
        )
    )
    # A champion who left, or none found yet: an account that rests on no one.
    register_field(
        Field(
            name="account.champions",
            subject="account",
            type=FieldType.NUMBER,
            label="Champions (contacts with the champion role)",
            expression=_champions_expression,
            value=_champions_value,
        )
    )
    for subject in ("account", "contact"):
        register_namespace(
            prefix=f"{subject}.attributes",
            subject=subject,
            # Attribute keys are single identifiers; a dotted rest names no attribute.
            resolve=lambda tenant, key, subject=subject: None if "." in key else attribute_field(subject, key),
            list_fields=lambda tenant: [],
        )
