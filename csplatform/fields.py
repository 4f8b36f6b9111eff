"""Model fields shared by the apps."""

import orjson
from django.db import models


class ComputedJSONField(models.JSONField):
    """JSON that the platform computes and writes itself: metric values, health breakdowns.

    Every pass of the pipeline reads each account's and contact's stored
    values back to compare them with the new ones, and decoding them was
    about a fifth of a steady pass. orjson decodes them several times faster
    than the standard library. Text it refuses (NaN, a lone surrogate, which
    SQLite can hold) is read the standard way instead. It reads integers
    beyond 64 bits as floats, which the counts and sums stored here never
    reach; JSON that users send (attributes, properties) stays on JSONField.
    """

    def from_db_value(self, value, expression, connection):
        if isinstance(value, str):
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                pass
        return super().from_db_value(value, expression, connection)
