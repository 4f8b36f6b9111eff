"""How long an account has been in its stage, and whether that is too long.

Days are counted as calendar days in the tenant's time zone. The database
side compares integer day numbers (`AccountStage.entered_day`) with today's
number computed in Python, so SQLite and PostgreSQL give the same answer
as the Python side.
"""

from django.db import models
from django.db.models import Case, F, Value, When
from django.db.models.lookups import GreaterThan
from django.utils import timezone

from csplatform.tenancy.timezones import tenant_today, tenant_zone


class SlaStatus(models.TextChoices):
    ON_TRACK = "on_track", "On track"
    BEHIND = "behind", "Behind"
    STUCK = "stuck", "Stuck"


def day_number(moment, tenant):
    """The day number of a datetime in the tenant's time zone."""
    return timezone.localtime(moment, tenant_zone(tenant)).date().toordinal()


def days_in_stage(entered_day, today):
    return today.toordinal() - entered_day


def sla_status(days, expected_days):
    """on_track until `expected_days` have passed, behind after, stuck after twice as long."""
    if days is None:
        return None
    if expected_days is None:
        return SlaStatus.ON_TRACK.value
    if days > 2 * expected_days:
        return SlaStatus.STUCK.value
    if days > expected_days:
        return SlaStatus.BEHIND.value
    return SlaStatus.ON_TRACK.value


def days_in_stage_expression(tenant, prefix=""):
    """Days in the current stage; `prefix` reaches AccountStage from another model ("lifecycle__")."""
    today = tenant_today(tenant).toordinal()
    return Value(today, output_field=models.IntegerField()) - F(f"{prefix}entered_day")


def sla_status_expression(tenant, prefix=""):
    days = days_in_stage_expression(tenant, prefix)
    expected = F(f"{prefix}stage__expected_days")
    return Case(
        When(**{f"{prefix}entered_day__isnull": True}, then=Value(None)),
        When(**{f"{prefix}stage__expected_days__isnull": True}, then=Value(SlaStatus.ON_TRACK.value)),
        When(GreaterThan(days, expected * 2), then=Value(SlaStatus.STUCK.value)),
        When(GreaterThan(days, expected), then=Value(SlaStatus.BEHIND.value)),
        default=Value(SlaStatus.ON_TRACK.value),
        output_field=models.CharField(),
    )
