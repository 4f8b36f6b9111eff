"""The lifecycle fields that criteria can read: `stage`, `stage.status`, `days_in_stage`.

Registered with the rules registry when the app is ready, so the criteria
language needs no import of this app.
"""

from django.db.models import F

from csplatform.rules.registry import Field, FieldType, register_field
from csplatform.tenancy.timezones import tenant_today

from .models import AccountStage
from .sla import days_in_stage, days_in_stage_expression, sla_status, sla_status_expression


def _state(account):
    try:
        return account.lifecycle
    except AccountStage.DoesNotExist:
        return None


def _stage_key(account, tenant):
    state = _state(account)
    return state.stage.key if state else None


def _days(account, tenant):
    state = _state(account)
    return days_in_stage(state.entered_day, tenant_today(tenant)) if state else None


def _status(account, tenant):
    state = _state(account)
    return sla_status(_days(account, tenant), state.stage.expected_days) if state else None


def register_criteria_fields():
    register_field(
        Field(
            name="stage",
            subject="account",
            type=FieldType.STRING,
            label="Lifecycle stage (key)",
            expression=lambda tenant: F("lifecycle__stage__key"),
            value=_stage_key,
            related=("lifecycle__stage",),
        )
    )
    register_field(
        Field(
            name="stage.status",
            subject="account",
            type=FieldType.STRING,
            label="Stage SLA status (on_track, behind, stuck)",
            expression=lambda tenant: sla_status_expression(tenant, prefix="lifecycle__"),
            value=_status,
            related=("lifecycle__stage",),
        )
    )
    register_field(
        Field(
            name="days_in_stage",
            subject="account",
            type=FieldType.NUMBER,
            label="Days in the current stage",
            expression=lambda tenant: days_in_stage_expression(tenant, prefix="lifecycle__"),
            value=_days,
            related=("lifecycle__stage",),
        )
    )
