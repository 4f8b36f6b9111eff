import pytest

from csplatform.customers.models import Account
from csplatform.rules.registry import resolve_field
from health.services import health_override_set, health_score

from ..factories import AccountFactory
from .conftest import make_account

pytestmark = pytest.mark.django_db


def read_both_ways(tenant, name):
    """The field's SQL expression and Python value for every account, by account id."""
    field = resolve_field(name, subject="account", tenant=tenant)
    accounts = Account.objects.for_tenant(tenant).annotate(_value=field.expression(tenant)).order_by("pk")
    sql = {account.pk: account._value for account in accounts}
    python = {pk: field.value(Account.objects.for_tenant(tenant).get(pk=pk), tenant) for pk in sql}
    return sql, python


def test_health_fields_read_the_same_in_sql_and_python(tenant, default_card, alice):
    green = make_account(tenant, logins_30d=20)
    red = make_account(tenant, logins_30d=2)
    overridden = make_account(tenant, logins_30d=2)
    unscored = AccountFactory(tenant=tenant)
    health_score(tenant=tenant, account_ids=[green.pk, red.pk, overridden.pk])
    health_override_set(tenant=tenant, account=overridden, actor=alice, colour="green", reason="Signed a 3-year deal")

    sql, python = read_both_ways(tenant, "health.colour")
    assert sql == python == {green.pk: "green", red.pk: "red", overridden.pk: "green", unscored.pk: None}
    sql, python = read_both_ways(tenant, "health.score")
    assert sql == python == {green.pk: 100.0, red.pk: 10.0, overridden.pk: 10.0, unscored.pk: None}
    for name in ("health.delta_7d", "health.delta_30d"):
        sql, python = read_both_ways(tenant, name)
        assert sql == python and set(sql.values()) == {None}
