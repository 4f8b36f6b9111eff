"""Validation of ingest payloads, one item at a time.

A bad item is reported with its path (`events[3].timestamp`) and never costs
the valid items of the same batch. The same fields serve the batch API and
the Segment-compatible API.
"""

import datetime as dt
import math

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError

from csplatform.sql import OneOf
from csplatform.tenancy.api.errors import flatten_errors

from ..models import Account, Contact, DailyPropertyRollup, UsageEvent

# Numbers beyond 2**53 lose precision in the float rollups and in JavaScript readers.
MAX_SAFE_INTEGER = 2**53 - 1
MAX_JSON_DEPTH = 16
# Top-level property names become rollup keys.
MAX_PROPERTY_NAME = DailyPropertyRollup._meta.get_field("prop").max_length
EARLIEST_TIMESTAMP = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def json_problem(value, depth=0):
    """Why `value` cannot be stored as event JSON, or None.

    PostgreSQL text and jsonb refuse NUL characters and lone surrogates, and
    numbers must fit the float rollups; deep nesting is refused early.
    """
    if depth > MAX_JSON_DEPTH:
        return f"Nested deeper than {MAX_JSON_DEPTH} levels."
    if isinstance(value, str):
        return string_problem(value)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if abs(value) <= MAX_SAFE_INTEGER else f"Number out of range (at most ±{MAX_SAFE_INTEGER})."
    if isinstance(value, float):
        return None if math.isfinite(value) else "Number out of range."
    if isinstance(value, list):
        return next(filter(None, (json_problem(item, depth + 1) for item in value)), None)
    if isinstance(value, dict):
        problems = (string_problem(key) or json_problem(item, depth + 1) for key, item in value.items())
        return next(filter(None, problems), None)
    return "Not a JSON value."


def printable_name(name):
    """A client-sent key as it can appear in an error path: lone surrogates escaped."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def string_problem(value):
    if "\x00" in value:
        return "NUL characters are not allowed."
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "Invalid Unicode (lone surrogate)."
    return None


def plain_string(value, max_length):
    """True for a string a CharField of `max_length` takes as it is: not blank, nothing to trim, storable."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= max_length
        and value == value.strip()
        and string_problem(value) is None
    )


class StrictCharField(serializers.CharField):
    """A CharField that takes only JSON strings: a number where a name belongs is a client bug."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.DATETIME)
class AwareDateTimeField(serializers.Field):
    """An ISO 8601 time with an offset, not before 1970 and not too far in the future."""

    default_error_messages = {
        "invalid": "Expected an ISO 8601 date-time with a time zone, e.g. 2025-03-01T09:30:00Z.",
        "naive": "The date-time needs a time zone offset or Z.",
        "too_old": "The date-time is before 1970-01-01.",
        "in_future": "The date-time is more than {seconds} seconds in the future.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            value = parse_datetime(data.strip())
        except ValueError:
            value = None
        if value is None:
            self.fail("invalid")
        if value.tzinfo is None:
            self.fail("naive")
        if value < EARLIEST_TIMESTAMP:
            self.fail("too_old")
        max_future = settings.CSP_INGEST_MAX_FUTURE_SECONDS
        if value > timezone.now() + dt.timedelta(seconds=max_future):
            self.fail("in_future", seconds=max_future)
        return value

    def to_representation(self, value):
        return value.isoformat()


class JSONObjectField(serializers.JSONField):
    """A JSON object whose content every database can store."""

    default_error_messages = {"not_object": "Expected a JSON object."}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_object")
        problem = json_problem(data)
        if problem:
            raise ValidationError(problem, code="invalid")
        return data


class PropertiesField(JSONObjectField):
    """Event properties; top-level names are bounded because they become rollup keys."""

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        too_long = [name for name in data if len(name) > MAX_PROPERTY_NAME]
        if too_long:
            raise ValidationError(f"Property names are at most {MAX_PROPERTY_NAME} characters.", code="invalid")
        return data


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is an error rather than silently lost data."""

    def to_internal_value(self, data):
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        errors = {}
        try:
            value = super().to_internal_value(data)
        except ValidationError as exc:
            errors = dict(exc.detail)
        for name in unknown:
            errors[printable_name(name)] = [ErrorDetail("Unknown field.", code="unknown_field")]
        if errors:
            raise ValidationError(errors)
        return value


class EventInSerializer(StrictSerializer):
    message_id = StrictCharField(max_length=200, help_text="Unique per tenant; a repeated id is stored once.")
    account = StrictCharField(max_length=200, help_text="The account's external id.")
    contact = StrictCharField(max_length=200, required=False, allow_null=True, help_text="The contact's external id.")
    event = StrictCharField(max_length=200)
    timestamp = AwareDateTimeField(help_text="ISO 8601 with a time zone.")
    properties = PropertiesField(required=False, default=dict)


class EventValidator:
    """Validates batch items: a plainly valid item directly, any other through `EventInSerializer`.

    The serializer states the contract and words every error. Nearly every
    item a client sends is plainly valid, and DRF's per-field machinery costs
    more than storing the event, so an item of exactly the expected shape (the
    known keys, strings within the serializer's limits with nothing to trim,
    a valid time and properties) is accepted here. Anything else goes through
    the serializer, which accepts it or reports its errors; this check may
    only ever be stricter than the serializer.
    """

    NAMES = ("message_id", "account", "event")

    def __init__(self):
        self.serializer = EventInSerializer()
        fields = self.serializer.fields
        self.known = set(fields)
        self.max_lengths = {name: fields[name].max_length for name in (*self.NAMES, "contact")}
        self.timestamp, self.properties = fields["timestamp"], fields["properties"]

    def validate(self, item):
        """The validated item, or ValidationError with the serializer's errors."""
        data = self.plain(item)
        return data if data is not None else self.serializer.run_validation(item)

    def plain(self, item):
        if not isinstance(item, dict) or not item.keys() <= self.known or "timestamp" not in item:
            return None
        contact = item.get("contact")
        names = self.NAMES if contact is None else (*self.NAMES, "contact")
        if not all(plain_string(item.get(name), self.max_lengths[name]) for name in names):
            return None
        try:
            data = {
                "timestamp": self.timestamp.to_internal_value(item["timestamp"]),
                "properties": self.properties.to_internal_value(item.get("properties", {})),
            }
        except ValidationError:
            return None
        for name in self.NAMES:
            data[name] = item[name]
        if "contact" in item:
            data["contact"] = contact
        return data


class EventBatchInSerializer(serializers.Serializer):
    events = EventInSerializer(many=True)


class EventItemErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    field = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    message = serializers.CharField()


class EventBatchResultSerializer(serializers.Serializer):
    stored = serializers.IntegerField(help_text="Events stored by this request.")
    duplicates = serializers.IntegerField(help_text="Events whose message_id was already stored.")
    errors = EventItemErrorSerializer(many=True, help_text="Items refused, each with its index and field path.")


class UsageEventSerializer(serializers.ModelSerializer):
    contact = serializers.SlugRelatedField(slug_field="external_id", read_only=True)

    class Meta:
        model = UsageEvent
        fields = ["id", "message_id", "event", "timestamp", "properties", "contact", "received_at"]
        read_only_fields = fields


class ItemErrors:
    """Per-item errors of a batch, each `{"index", "field", "code", "message"}`."""

    def __init__(self, prefix=None):
        # Without a prefix the request holds a single item and paths are bare field names.
        self.prefix = prefix
        self.items = []
        self.bad = set()

    def path(self, index, field=None):
        base = f"{self.prefix}[{index}]" if self.prefix else ""
        return ".".join(filter(None, [base, field])) or None

    def add(self, index, field, code, message):
        self.items.append({"index": index, "field": self.path(index, field), "code": code, "message": message})
        self.bad.add(index)

    def add_detail(self, index, detail):
        for error in flatten_errors(detail, self.path(index)):
            self.items.append({"index": index, **error})
        self.bad.add(index)

    def as_validation_error(self):
        """All errors as one ValidationError, for a batch where nothing was valid."""
        detail = {}
        for error in self.items:
            field = error["field"] or "non_field_errors"
            detail.setdefault(field, []).append(ErrorDetail(error["message"], code=error["code"]))
        return ValidationError(detail)


def report_repeated_ids(indexed_ids, errors, field):
    """Report every repeat of an id within one batch as an error on the later item."""
    first = {}
    for index, message_id in indexed_ids:
        if message_id in first:
            errors.add(index, field, "duplicate_in_batch", f"Repeats the id of item {first[message_id]} in this batch.")
        else:
            first[message_id] = index


def event_batch_validate(*, tenant, items):
    """Validate `items` of the batch API and resolve their external ids in `tenant`.

    Returns `(events, errors)`: the events ready for `events_ingest` and an
    `ItemErrors`. Ids resolve only among the tenant's own accounts and
    contacts, so another tenant's ids are simply unknown.
    """
    errors = ItemErrors("events")
    valid = []
    validator = EventValidator()
    for index, item in enumerate(items):
        try:
            valid.append((index, validator.validate(item)))
        except ValidationError as exc:
            errors.add_detail(index, serializers.as_serializer_error(exc))
    report_repeated_ids(((index, data["message_id"]) for index, data in valid), errors, "message_id")
    valid = [(index, data) for index, data in valid if index not in errors.bad]

    accounts = dict(
        Account.objects.for_tenant(tenant)
        .filter(OneOf("external_id", {data["account"] for _, data in valid}))
        .values_list("external_id", "id")
    )
    contacts = {
        external_id: (pk, account_id)
        for external_id, pk, account_id in Contact.objects.for_tenant(tenant)
        .filter(OneOf("external_id", {data["contact"] for _, data in valid if data.get("contact")}))
        .values_list("external_id", "id", "account_id")
    }
    events = []
    for index, data in valid:
        account_id = accounts.get(data["account"])
        if account_id is None:
            errors.add(index, "account", "unknown_account", "unknown account")
            continue
        contact_id = None
        if data.get("contact"):
            contact_id, contact_account_id = contacts.get(data["contact"], (None, None))
            if contact_id is None:
                errors.add(index, "contact", "unknown_contact", "unknown contact")
                continue
            if contact_account_id != account_id:
                errors.add(index, "contact", "invalid", "The contact belongs to another account.")
                continue
        events.append(
            {
                "message_id": data["message_id"],
                "account_id": account_id,
                "contact_id": contact_id,
                "event": data["event"],
                "timestamp": data["timestamp"],
                "properties": data["properties"],
            }
        )
    errors.items.sort(key=lambda error: error["index"])
    return events, errors
