"""SQL for the bulk work of ingest and the pipeline, on SQLite and PostgreSQL alike.

Both handle thousands of rows or ids per statement, where the ORM's work per
value becomes most of the cost: `upsert` writes rows with an ON CONFLICT
action of its own (which `bulk_create` cannot take), `OneOf` filters by a
chunk's ids without preparing each one, and `plain_rows` reads rows without
converting each value. On PostgreSQL the rows and ids travel as one
parameter per column (`row_source`, `array_literal`) rather than one per value,
`keyed_plans` keeps a chunk's queries on the keys of its rows, and
`analyze_where_tenant_unseen` has the statistics of a table learn of a tenant
that arrived after them.
"""

from contextlib import contextmanager
from functools import partial

from django.core.exceptions import EmptyResultSet
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import BooleanField, F, Func, JSONField

# Integer, float and text columns reach every driver as they are. On PostgreSQL
# dates and aware times do too: Django's conversion for it hands them over
# unchanged (for SQLite it writes them as text).
INTEGER_COLUMN_TYPES = {
    "AutoField", "BigAutoField", "ForeignKey", "IntegerField", "BigIntegerField", "PositiveIntegerField",
}
PLAIN_COLUMN_TYPES = INTEGER_COLUMN_TYPES | {"CharField", "TextField", "FloatField"}
PLAIN_ON_POSTGRESQL = PLAIN_COLUMN_TYPES | {"DateField", "DateTimeField"}


def parameters(count):
    """`(%s, %s, …)`: `count` query parameters in parentheses, for a VALUES row or an IN list."""
    return "(" + ", ".join(["%s"] * count) + ")"


def differs(left, right):
    """SQL that is true when two values differ, NULL counting as a value."""
    # PostgreSQL compares jsonb by value; SQLite stores JSON as text, which the
    # fixed key order of what is written keeps comparable.
    if connection.vendor == "postgresql":
        return f"{left} IS DISTINCT FROM {right}"
    return f"{left} IS NOT {right}"


def value_converter(field, database):
    """The field's own conversion of a value for `database`, or None where the value goes as it is.

    Called for each value of thousands of rows, where the conversion's chain
    of calls (1.4 µs a date, 3.5 µs a time, measured) is most of what
    building a statement costs.
    """
    plain = PLAIN_ON_POSTGRESQL if database.vendor == "postgresql" else PLAIN_COLUMN_TYPES
    if field.get_internal_type() in plain:
        return None
    return partial(field.get_db_prep_save, connection=database)


def upsert(model, field_names, rows, *, conflict, action, returning=None):
    """Multi-row `INSERT ... ON CONFLICT (...) <action>` of `rows`, tuples in `field_names` order.

    `action` may name columns as `{field_name}` and the target table as
    `{table}`. The rows go as `row_source` writes them, in chunks the
    database accepts; returns the RETURNING rows.
    """
    if not rows:
        return []
    quote = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in field_names]
    names = {field.name: quote(field.column) for field in fields}
    names["table"] = quote(model._meta.db_table)
    insert = f"INSERT INTO {names['table']} ({', '.join(names[field.name] for field in fields)})"
    target = ", ".join(quote(model._meta.get_field(name).column) for name in conflict)
    suffix = f" ON CONFLICT ({target}) {action.format(**names)}"
    if returning:
        suffix += f" RETURNING {quote(model._meta.get_field(returning).column)}"
    # The thread's own connection: the `connection` proxy costs a lookup per use, and values are converted for it.
    database = transaction.get_connection()
    chunk_size = database.ops.bulk_batch_size(fields, rows)

    returned = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), chunk_size):
            source, params = row_source(fields, rows[start : start + chunk_size], database)
            cursor.execute(f"{insert} {source}{suffix}", params)
            if returning:
                returned.extend(cursor.fetchall())
    return returned


def overwrite(field_names):
    """The `upsert` action that gives a conflicting row the new row's values of these fields."""
    return "DO UPDATE SET " + ", ".join(f"{{{name}}} = excluded.{{{name}}}" for name in field_names)


def row_source(fields, rows, database):
    """SQL that yields `rows`, tuples in `fields` order, as rows of those columns' types; and its parameters.

    Values are converted as the ORM converts them for their field and
    `database`, so they are stored exactly as the ORM stores them. On
    PostgreSQL the rows go as one parameter per column, zipped back into
    rows: a parameter per value costs psycopg2 an adapter for each and
    PostgreSQL a parsed constant for each. For a 500-event insert the
    columns' text took 60 % less of the process's time and 35 % less of
    PostgreSQL's (measured). Elsewhere they go as `VALUES` rows.
    """
    if database.vendor == "postgresql":
        functions, columns, params = [], [], []
        for index, (field, values) in enumerate(zip(fields, zip(*rows))):
            if isinstance(field, JSONField):
                functions.append("jsonb_array_elements(%s::jsonb)")
                params.append(json_document(field, database, values))
                # None is SQL NULL for a JSON field, as the ORM stores it; the document can only say null.
                columns.append(f"NULLIF(c{index}, 'null')")
            else:
                functions.append(f"unnest(%s::{array_type(field, database)})")
                params.append(array_literal(field, database, values))
                columns.append(f"c{index}")
        aliases = ", ".join(f"c{index}" for index in range(len(fields)))
        return f"SELECT {', '.join(columns)} FROM ROWS FROM ({', '.join(functions)}) AS source ({aliases})", params
    converters = [value_converter(field, database) for field in fields]
    params = [value if convert is None else convert(value) for row in rows for convert, value in zip(converters, row)]
    return "VALUES " + ", ".join([parameters(len(fields))] * len(rows)), params


def json_document(field, database, values):
    """One JSON array of a JSON field's `values`, written by the field's own encoder in one call."""
    # The field wraps what it writes for psycopg2; the wrapper holds its encoder.
    document = field.get_db_prep_save(list(values), database)
    return document.dumps(document.adapted)


def array_type(field, database):
    """The PostgreSQL array type that carries the field's values to its column."""
    # Text, not varchar(n): an explicit cast would cut a long value short, where
    # storing it into the column raises the error a VALUES row would.
    if field.get_internal_type() in ("CharField", "TextField"):
        return "text[]"
    return f"{field.db_type(database)}[]"


def array_literal(field, database, values):
    """PostgreSQL's text form of an array of the field's `values`, `{1,NULL,"a \\"b\\""}`, for one parameter.

    Each value is converted as the ORM converts it for the field; integers
    go bare, anything else as a quoted element.
    """
    if field.get_internal_type() in INTEGER_COLUMN_TYPES:
        return "{" + ",".join("NULL" if value is None else str(value) for value in values) + "}"
    convert = value_converter(field, database)
    if convert is not None:
        values = [convert(value) for value in values]
    elements = (
        "NULL" if value is None else '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        for value in values
    )
    return "{" + ",".join(elements) + "}"


def plain_rows(queryset):
    """The queryset's rows as tuples, as the driver returns them: for columns that need no conversion.

    Django passes every value of every row through the field's converters;
    over the tens of thousands of grouped rows of a metrics chunk that was
    most of the Python after the query, and integers need none. Dates and
    times arrive as the driver gives them (text on SQLite).
    """
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


class OneOf(Func):
    """`filter(OneOf("account_id", ids))`: the rows whose `account_id` is one of `ids`.

    For integer and text columns, with values as read from the database or
    validated: they are bound as they are. The pipeline filters every step
    by its chunk's thousands of ids, and ingest looks up each batch's
    external ids. A plain `__in` list is prepared value by value
    (normalised, converted, then given a parameter each), and PostgreSQL
    parses each of those parameters as a constant of its own before turning
    the list into `= ANY(array)`: together about 6 ms for 2,000 ids, where
    one array parameter takes under 2 ms (measured). So on PostgreSQL the
    values go as that array, written as one `array_literal`, and elsewhere
    as an `IN` list. Either way they are parameters, never SQL text.
    """

    output_field = BooleanField()

    def __init__(self, field_name, values):
        super().__init__(F(field_name))
        self.values = list(values)

    def as_sql(self, compiler, connection):
        if not self.values:
            # As Django does for an empty `__in` list: the filter matches nothing.
            raise EmptyResultSet
        column, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            field = self.source_expressions[0].output_field
            return (
                f"{column} = ANY(%s::{array_type(field, connection)})",
                [*params, array_literal(field, connection, self.values)],
            )
        return f"{column} IN {parameters(len(self.values))}", [*params, *self.values]


def _set_config(values):
    """Set each `{name: value}` in one statement; return `{name: its value before}` ('' for none).

    Inside a transaction the values are transaction-local (SET LOCAL); in
    autocommit they hold for the connection until they are set back.
    """
    names = list(values)
    reads = ", ".join(["current_setting(%s, true)"] * len(names))
    writes = ", ".join(["set_config(%s, %s, %s)"] * len(names))
    local = connection.in_atomic_block
    params = [*names, *(param for name in names for param in (name, values[name], local))]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {reads}, {writes}", params)
        before = cursor.fetchone()[: len(names)]
    return {name: value or "" for name, value in zip(names, before)}


@contextmanager
def database_settings(values):
    """Set PostgreSQL's run-time settings `{name: value}` for the block and put the previous values back;
    elsewhere this does nothing.

    A failed transaction rolls its settings back by itself. A connection that
    broke meanwhile is closed instead: the settings die with it, so none can
    outlive the block on a reused connection, and the database error stays
    the block's own (an API 503) instead of a new one raised from here.
    """
    if connection.vendor != "postgresql":
        yield
        return
    previous = _set_config(values)
    try:
        yield
    finally:
        if not connection.needs_rollback:
            try:
                _set_config(previous)
            except (OperationalError, InterfaceError):
                connection.close()


def keyed_plans():
    """Plan the block's queries as reads of a chunk's rows by key, on PostgreSQL.

    A chunk's queries read a few thousand rows by key, and the planner's
    defaults price that above scanning a whole table once a tenant is large:
    on a tenant of 100,000 accounts it chose a parallel scan of the tenant's
    whole range of an index (five times as long), and hash joins over every
    tenant's stage and contact metric rows (four to five times as long), so
    a pass grew with the table rather than the tenant. Without parallel
    workers and with random reads priced near sequential ones, as for rows
    that a pass finds in memory or on SSD, it probes the keys.
    """
    return database_settings({"max_parallel_workers_per_gather": "0", "random_page_cost": "1.1"})


def analyze_where_tenant_unseen(tenant_id, models):
    """ANALYZE those of the models' tables where the planner expects one row of the tenant at most though it
    holds more, on PostgreSQL; returns their names.

    Statistics taken while a table held a few tenants list each of them among
    its most common tenant ids; the planner then expects one row for a tenant
    they did not see, whatever it holds since, and may walk any index that
    starts with the tenant once for each row a query looks up. Autovacuum
    analyses a table only after a tenth of it has changed, which a large
    tenant's first rows in a large shared table may never reach. The planner
    is asked rather than `pg_stats`, which row-level security hides from the
    app's role, and the analysis runs through a function that migration
    `csplatform/0002` gives the tables' owner, since only it may analyse them.
    """
    if connection.vendor != "postgresql":
        return []
    analysed = []
    with connection.cursor() as cursor:
        for model in models:
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"EXPLAIN (FORMAT JSON) SELECT FROM {table} WHERE tenant_id = %s", [tenant_id])
            if cursor.fetchone()[0][0]["Plan"]["Plan Rows"] > 1:
                continue
            cursor.execute(f"SELECT EXISTS (SELECT FROM {table} WHERE tenant_id = %s OFFSET 1)", [tenant_id])
            if cursor.fetchone()[0]:
                cursor.execute("SELECT csp_analyze_tenant_table(%s::regclass)", [table])
                analysed.append(model._meta.db_table)
    return analysed
