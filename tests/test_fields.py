"""ComputedJSONField: stored metric values read back as JSONField reads them, through the model and through a join."""

import json
import math

from django.db import connection
from django.utils import timezone

from csplatform.customers.models import Account
from csplatform.fields import OrjsonEncoder
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


def test_values_the_fast_encoder_refuses_are_written_the_standard_way(tenant):
    awkward = {"beyond_64_bits": 2**70, 7: "a key that is not a string"}

    assert json.dumps(awkward, cls=OrjsonEncoder) == json.dumps(awkward)
    account = store(tenant, awkward)
    stored = AccountMetrics.objects.for_tenant(tenant).get(account=account).values
    assert stored["7"] == "a key that is not a string" and stored["beyond_64_bits"] == 2**70


def test_the_fast_encoder_writes_what_the_standard_one_reads_back_the_same():
    assert json.loads(json.dumps(VALUES, cls=OrjsonEncoder)) == VALUES
