"""SQL expressions the criteria need that Django does not ship, for SQLite and PostgreSQL.

Both read JSON the same way on the two databases, so that a JSON attribute
has one type per row everywhere: "number", "string", "true", "false",
"null", "array" or "object" (NULL when the key is absent).
"""

from django.db import NotSupportedError
from django.db.models import BooleanField, CharField, Expression, F, Func


class JSONKind(Func):
    """The JSON type of `column -> key`, named alike on SQLite and PostgreSQL."""

    output_field = CharField()

    def __init__(self, column, key):
        self.key = key
        super().__init__(F(column) if isinstance(column, str) else column)

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError("Criteria on JSON attributes need SQLite or PostgreSQL.")

    def as_sqlite(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        path = '$."%s"' % self.key
        sql = (
            f"CASE json_type({column}, %s) WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' "
            f"WHEN 'text' THEN 'string' ELSE json_type({column}, %s) END"
        )
        return sql, (*params, path, *params, path)

    def as_postgresql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        sql = (
            f"CASE jsonb_typeof(({column})::jsonb -> %s) WHEN 'boolean' THEN (({column})::jsonb ->> %s) "
            f"ELSE jsonb_typeof(({column})::jsonb -> %s) END"
        )
        return sql, (*params, self.key, *params, self.key, *params, self.key)


class JSONArrayContains(Expression):
    """True when the JSON value is an array holding the string `value`; false otherwise, never NULL."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, array, value):
        super().__init__()
        self.array = array
        self.value = value

    def get_source_expressions(self):
        return [self.array]

    def set_source_expressions(self, expressions):
        (self.array,) = expressions

    def resolve_expression(self, query=None, allow_joins=True, reuse=None, summarize=False, for_save=False):
        clone = self.copy()
        clone.array = self.array.resolve_expression(query, allow_joins, reuse, summarize, for_save)
        return clone

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError("Criteria on list fields need SQLite or PostgreSQL.")

    def as_sqlite(self, compiler, connection, **extra):
        array, params = compiler.compile(self.array)
        sql = (
            f"CASE WHEN json_type({array}) = 'array' THEN EXISTS (SELECT 1 FROM json_each({array}) AS element "
            "WHERE element.type = 'text' AND element.value = %s) ELSE 0 END"
        )
        return sql, (*params, *params, self.value)

    def as_postgresql(self, compiler, connection, **extra):
        array, params = compiler.compile(self.array)
        sql = (
            f"CASE WHEN jsonb_typeof(({array})::jsonb) = 'array' THEN EXISTS (SELECT 1 FROM "
            f"jsonb_array_elements(({array})::jsonb) AS element(item) WHERE jsonb_typeof(element.item) = 'string' "
            "AND element.item #>> '{}' = %s) ELSE false END"
        )
        return sql, (*params, *params, self.value)
