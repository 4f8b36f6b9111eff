"""Filters shared by every API filterset, safe against out-of-range input."""

import datetime as dt

import django_filters
from django import forms
from django.core.exceptions import ValidationError

MAX_ID = 2**63 - 1


class IdFilter(django_filters.Filter):
    """A row id: a whole number in the database's range, else a 400."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class EmailFilter(django_filters.CharFilter):
    """An email address, matched ignoring case; anything that is not one is a 400.

    The column only holds validated addresses, so a value that is not one
    could never match; refusing it up front also keeps arbitrary text (any
    script, any length) out of the query.
    """

    field_class = forms.EmailField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("lookup_expr", "iexact")
        super().__init__(*args, **kwargs)


class TrueOrFalseField(forms.NullBooleanField):
    """`true` or `false` (any case), or `1` or `0`; nothing is no filter, anything else is refused."""

    widget = forms.TextInput
    VALUES = {"true": True, "1": True, "false": False, "0": False}

    def to_python(self, value):
        if value in (None, ""):
            return None
        try:
            return self.VALUES[str(value).lower()]
        except KeyError:
            raise ValidationError("Must be true or false.", code="invalid") from None


class BooleanFilter(django_filters.BooleanFilter):
    """A yes-or-no filter that answers 400 to a value it cannot read, rather than not filtering at all."""

    field_class = TrueOrFalseField


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 time, compared in UTC.

    Python accepts UTC offsets up to ±23:59, PostgreSQL only up to ±15:59;
    converting first keeps an odd offset a valid query instead of an error.
    """

    def filter(self, qs, value):
        if value is not None:
            value = value.astimezone(dt.timezone.utc)
        return super().filter(qs, value)
