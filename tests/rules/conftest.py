"""Fields that only the criteria tests register, and a fixed instant to evaluate at.

`metric.logins_30d`, `health.delta_7d` and `stage` are owned by other apps;
here they read plain JSON attributes so that these tests depend on the
criteria language alone.
"""

import datetime as dt

import pytest
from django.db.models import FloatField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from csplatform.rules import Field, FieldType, overridden_fields

NOW = dt.datetime(2025, 6, 15, 12, 30, tzinfo=dt.timezone.utc)


def attribute_backed(name, key, field_type):
    cast = {FieldType.NUMBER: FloatField()}.get(field_type)

    def expression(tenant):
        text = KeyTextTransform(key, "attributes")
        return Cast(text, cast) if cast else text

    return Field(
        name=name,
        subject="account",
        type=field_type,
        label=name,
        expression=expression,
        value=lambda account, tenant: account.attributes.get(key),
    )


@pytest.fixture
def now():
    return NOW


@pytest.fixture
def test_fields():
    with overridden_fields(
        attribute_backed("metric.logins_30d", "logins_30d", FieldType.NUMBER),
        attribute_backed("health.delta_7d", "delta_7d", FieldType.NUMBER),
        attribute_backed("stage", "stage", FieldType.STRING),
    ):
        yield
