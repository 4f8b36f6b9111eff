"""ComputedJSONField: stored metric values read back as JSONField reads them, through the model and through a join."""

import math

from django.db import connection
from django.utils import timezone

from csplatform.customers.models import Account
from csplatform.rules.models import AccountMetrics
from tests.factories import AccountFactory

VALUES = {"events_7d": 12, "trend_30d": -3.5, "plan_seen": "pro ✓", "days_since_last_seen": None, "ratio": 0.1}


def store(tenant, values):
    account = AccountFactory(tenant=tenant)
    AccountMetrics.objects.create(tenant=tenant, account=account, values=values, computed_at=timezone.now())
    return account


def test_stored_values_read_back_unchanged_from_the_row_and_through_the_account(tenant):
    account = store(tenant, VALUES)

    assert AccountMetrics.objects.for_tenant(tenant).get(account=account).values == VALUES
    joined = Account.objects.for_tenant(tenant).filter(pk=account.pk).values_list("metric_values__values", flat=True)
    assert joined.get() == VALUES


def test_text_the_fast_decoder_refuses_is_read_the_standard_way():
    field = AccountMetrics._meta.get_field("values")

    value = field.from_db_value('{"average": NaN, "seen": "\\ud800"}', None, connection)

    assert math.isnan(value["average"]) and value["seen"] == "\ud800"
