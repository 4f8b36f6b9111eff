"""Usage-event ingest: store each event once and keep the daily rollups in step.

The batch API and the Segment-compatible API both end here, with events
already validated and their external ids resolved to the tenant's rows.
Everything is set-based: a batch of a thousand events costs the same handful
of statements as a batch of one.
"""

from collections import defaultdict
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import BooleanField, F, Func, Value
from django.db.models.fields.json import KeyTextTransform, compile_json_path
from django.db.models.functions import Left
from django.utils import timezone

from csplatform.sql import row_source, upsert
from csplatform.tenancy.timezones import tenant_day, tenant_zone

from .models import Contact, DailyPropertyRollup, DailyRollup, DailyValueRollup, UsageEvent
from .services import account_mark_dirty


@dataclass(frozen=True)
class IngestResult:
    stored: int
    duplicates: int


@transaction.atomic
def events_ingest(*, tenant, events):
    """Store the events that are new, fold them into the rollups and return the counts.

    `events` are dicts with `message_id`, `account_id`, `contact_id` (or None),
    `event`, `timestamp` (aware datetime) and `properties` (dict), all
    belonging to `tenant`. A message id seen before is a duplicate and changes
    nothing; within `events` the first occurrence wins.

    1. Insert all events in multi-row `INSERT ... ON CONFLICT (tenant_id,
       message_id) DO NOTHING RETURNING`. The returned rows are exactly the
       ones this transaction inserted. On PostgreSQL a concurrent batch with
       the same message ids waits on the unique index until the first one
       commits and then inserts nothing, so no event reaches the rollups
       twice; SQLite runs one writer at a time. Rows go in message id order
       so that overlapping concurrent batches take their locks in the same
       order and cannot deadlock.
    2. Upsert the daily counts and numeric-property rollups of the new events,
       days in the tenant's time zone, and add the distinct values of the
       string properties that some metric reads (one lookup per batch).
    3. Move each contact's `last_seen_at` forward to its newest event.
    4. Mark the touched accounts dirty for the pipeline.
    """
    unique = {}
    for event in events:
        unique.setdefault(event["message_id"], event)
    if not unique:
        return IngestResult(stored=0, duplicates=0)

    inserted = _events_insert(tenant, [unique[message_id] for message_id in sorted(unique)])
    new_events = [unique[message_id] for message_id in sorted(inserted)]
    if new_events:
        _rollups_add(tenant, new_events)
        _contacts_seen(tenant, new_events)
        account_mark_dirty(tenant=tenant, account_ids=sorted({event["account_id"] for event in new_events}))
    return IngestResult(stored=len(new_events), duplicates=len(unique) - len(new_events))


# Which string properties get value rollups is decided by the app whose metrics
# read them; it registers a lookup here, so this lower app imports nothing above it.
_value_property_lookups = []
MAX_VALUE_LENGTH = 200
# Contacts per last-seen UPDATE: two parameters each, within SQLite's 999.
CONTACTS_SEEN_CHUNK = 400


def register_value_properties(lookup):
    """Add `lookup(tenant) -> set of (event, property)`: the string properties whose values are rolled up."""
    if lookup not in _value_property_lookups:
        _value_property_lookups.append(lookup)


def value_properties(tenant):
    """The (event, property) pairs of the tenant whose string values ingest rolls up."""
    pairs = set()
    for lookup in _value_property_lookups:
        pairs |= set(lookup(tenant))
    return pairs


def local_day(timestamp, tz):
    """The calendar day of `timestamp` in time zone `tz`: the rollups' day."""
    return timestamp.astimezone(tz).date()


def is_rollup_number(value):
    # bool is an int in Python, but true/false are not measurements.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _events_insert(tenant, events):
    now = timezone.now()
    rows = [
        (
            tenant.pk,
            event["message_id"],
            event["account_id"],
            event.get("contact_id"),
            event["event"],
            event["timestamp"],
            event.get("properties") or {},
            now,
        )
        for event in events
    ]
    returned = upsert(
        UsageEvent,
        ["tenant", "message_id", "account", "contact", "event", "timestamp", "properties", "received_at"],
        rows,
        conflict=["tenant", "message_id"],
        action="DO NOTHING",
        returning="message_id",
    )
    return {message_id for (message_id,) in returned}


def _rollups_add(tenant, events):
    tz = tenant_zone(tenant)
    counts = defaultdict(int)
    props = {}
    for event in events:
        day = local_day(event["timestamp"], tz)
        counts[(event["account_id"], event.get("contact_id") or 0, day, event["event"])] += 1
        for prop, value in (event.get("properties") or {}).items():
            if not is_rollup_number(value):
                continue
            key = (event["account_id"], day, event["event"], prop)
            total, count, latest_value, latest_at = props.get(key, (0.0, 0, None, None))
            if latest_at is None or event["timestamp"] >= latest_at:
                latest_value, latest_at = float(value), event["timestamp"]
            props[key] = (total + float(value), count + 1, latest_value, latest_at)

    # Sorted keys make concurrent batches lock rollup rows in the same order.
    upsert(
        DailyRollup,
        ["tenant", "account", "contact_ref", "day", "event", "count"],
        [(tenant.pk, *key, n) for key, n in sorted(counts.items())],
        conflict=["tenant", "account", "day", "event", "contact_ref"],
        action="DO UPDATE SET {count} = {table}.{count} + excluded.{count}",
    )
    # The newest value wins; on equal times the batch arriving later does.
    newer = "({table}.{latest_at} IS NULL OR excluded.{latest_at} >= {table}.{latest_at})"
    upsert(
        DailyPropertyRollup,
        ["tenant", "account", "day", "event", "prop", "total", "count", "latest_value", "latest_at"],
        [(tenant.pk, *key, *values) for key, values in sorted(props.items())],
        conflict=["tenant", "account", "day", "event", "prop"],
        action=(
            "DO UPDATE SET {total} = {table}.{total} + excluded.{total}, "
            "{count} = {table}.{count} + excluded.{count}, "
            f"{{latest_value}} = CASE WHEN {newer} THEN excluded.{{latest_value}} ELSE {{table}}.{{latest_value}} END, "
            f"{{latest_at}} = CASE WHEN {newer} THEN excluded.{{latest_at}} ELSE {{table}}.{{latest_at}} END"
        ),
    )
    upsert(
        DailyValueRollup,
        ["tenant", "account", "day", "event", "prop", "value"],
        [(tenant.pk, *key) for key in sorted(_string_values(tenant, events, tz))],
        conflict=["tenant", "account", "day", "event", "prop", "value"],
        action="DO NOTHING",
    )


def _string_values(tenant, events, tz):
    """The distinct (account, day, event, property, value) of the string properties a metric reads."""
    strings = [
        (event, prop, value)
        for event in events
        for prop, value in (event.get("properties") or {}).items()
        if isinstance(value, str)
    ]
    # Most batches carry no string property at all; they need no lookup.
    tracked = value_properties(tenant) if strings else set()
    return {
        (event["account_id"], local_day(event["timestamp"], tz), event["event"], prop, value[:MAX_VALUE_LENGTH])
        for event, prop, value in strings
        if (event["event"], prop) in tracked
    }


class _IsJsonString(Func):
    """True where the JSON column holds a string under the key `prop` (numbers and booleans are not values)."""

    output_field = BooleanField()

    def __init__(self, column, prop):
        super().__init__(F(column))
        self.prop = prop

    def as_sqlite(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        return f"json_type({column}, %s) = 'text'", [*params, compile_json_path([self.prop])]

    def as_postgresql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        return f"jsonb_typeof({column} -> %s) = 'string'", [*params, self.prop]


@transaction.atomic
def value_rollups_rebuild(*, tenant, event_names, prop):
    """Roll up the values of `prop` on these events from every stored event, once, in one statement.

    Ingest keeps value rollups only for properties that a metric reads, so a
    new metric over a property calls this to cover the events already stored:
    `INSERT ... SELECT DISTINCT` over the raw events, days in the tenant's
    time zone, skipping rows that exist. Returns nothing; safe to run twice.
    """
    values = (
        UsageEvent.objects.for_tenant(tenant)
        .filter(_IsJsonString("properties", prop), event__in=list(event_names))
        .annotate(
            r_tenant=F("tenant_id"),
            r_account=F("account_id"),
            r_day=tenant_day(tenant, "timestamp"),
            r_event=F("event"),
            r_prop=Value(prop),
            r_value=Left(KeyTextTransform(prop, "properties"), MAX_VALUE_LENGTH),
        )
        .values_list("r_tenant", "r_account", "r_day", "r_event", "r_prop", "r_value")
        .order_by()
        .distinct()
    )
    select, params = values.query.sql_with_params()
    quote = connection.ops.quote_name
    table = DailyValueRollup._meta
    columns = [table.get_field(name).column for name in ("tenant", "account", "day", "event", "prop", "value")]
    column_list = ", ".join(quote(column) for column in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(table.db_table)} ({column_list}) {select} ON CONFLICT ({column_list}) DO NOTHING",
            params,
        )


def _contacts_seen(tenant, events):
    latest = {}
    for event in events:
        contact_id = event.get("contact_id")
        if contact_id and (contact_id not in latest or event["timestamp"] > latest[contact_id]):
            latest[contact_id] = event["timestamp"]
    if not latest:
        return
    # One UPDATE per chunk joined to the chunk's (contact, time) pairs, each
    # contact moving only forward. Raw SQL because the ORM has no UPDATE ... FROM.
    quote = connection.ops.quote_name
    table = quote(Contact._meta.db_table)
    pk, last_seen_at = Contact._meta.pk, Contact._meta.get_field("last_seen_at")
    column = quote(last_seen_at.column)
    database = transaction.get_connection()
    items = sorted(latest.items())
    with connection.cursor() as cursor:
        for start in range(0, len(items), CONTACTS_SEEN_CHUNK):
            seen, params = row_source([pk, last_seen_at], items[start : start + CONTACTS_SEEN_CHUNK], database)
            cursor.execute(
                f"WITH seen (contact_id, at) AS ({seen}) "
                f"UPDATE {table} SET {column} = seen.at FROM seen "
                f"WHERE {table}.id = seen.contact_id AND {table}.tenant_id = %s "
                f"AND ({table}.{column} IS NULL OR {table}.{column} < seen.at)",
                [*params, tenant.pk],
            )
