"""Criteria select the right accounts and contacts, in SQL and in Python, and explain why."""

import datetime as dt
import json

import pytest

from csplatform.customers.models import Account, Contact
from csplatform.rules import compile_criteria, load_criteria
from tests.factories import AccountFactory, ContactFactory, UserFactory

from .conftest import NOW

DAY = dt.timedelta(days=1)


def selected(criteria, queryset):
    """Names selected by the SQL path, after checking that the Python path selects the same."""
    in_sql = {obj.name for obj in criteria.filter(queryset, now=NOW)}
    in_python = {obj.name for obj in queryset if criteria.matches(obj, now=NOW)}
    assert in_sql == in_python
    return in_sql


@pytest.fixture
def accounts(tenant):
    def make(name, **fields):
        return AccountFactory(tenant=tenant, name=name, **fields)

    return {
        "active": make("Active", plan="pro", mrr=1500, attributes={"logins_30d": 25, "stage": "adoption", "delta_7d": 2}),
        "quiet": make("Quiet", plan="team", mrr=200, attributes={"logins_30d": 3, "segment": "smb", "delta_7d": -20}),
        "free": make("Free", plan="free", mrr=0, attributes={"logins_30d": 40, "delta_7d": -15}),
        "renewing": make(
            "Renewing",
            plan="pro",
            mrr=800,
            card_expires_at=NOW.date() + 10 * DAY,
            attributes={"stage": "renewal", "segment": "enterprise"},
        ),
        "lapsed": make("Lapsed", plan="", mrr=0, card_expires_at=NOW.date() - 2 * DAY, attributes={"stage": "renewal"}),
    }


@pytest.fixture
def queryset(tenant, accounts):
    return Account.objects.for_tenant(tenant)


@pytest.mark.parametrize(
    "text,expected",
    [
        ('metric.logins_30d >= 10 and account.plan in ["pro", "team"]', {"Active"}),
        ('stage == "renewal" and account.card_expires_at within 30 days', {"Renewing"}),
        ("not (account.attributes.segment exists) or account.mrr > 1000", {"Active", "Free", "Lapsed"}),
        ("health.delta_7d <= -15", {"Quiet", "Free"}),
        ("account.card_expires_at within last 7 days", {"Lapsed"}),
        ("account.card_expires_at < 0 days ago", {"Lapsed"}),
        ('account.card_expires_at > "2025-06-20"', {"Renewing"}),
        ('account.attributes.segment contains "prise"', {"Renewing"}),
        ('account.attributes.segment in ["smb", "mid"]', {"Quiet"}),
    ],
)
def test_account_criteria_select_the_expected_accounts(test_fields, queryset, text, expected):
    criteria = compile_criteria(text, tenant=queryset.first().tenant)
    assert selected(criteria, queryset) == expected


def test_a_missing_value_fails_every_comparison_and_passes_its_negation(tenant, queryset):
    # "Lapsed" has no plan: neither == nor != matches it, and `not` of either does.
    assert "Lapsed" not in selected(compile_criteria('account.plan != "pro"', tenant=tenant), queryset)
    assert "Lapsed" not in selected(compile_criteria('account.plan == "pro"', tenant=tenant), queryset)
    assert "Lapsed" in selected(compile_criteria('not (account.plan == "pro")', tenant=tenant), queryset)
    assert selected(compile_criteria("account.plan not exists", tenant=tenant), queryset) == {"Lapsed"}
    assert "Lapsed" not in selected(compile_criteria('account.plan not in ["pro"]', tenant=tenant), queryset)


def test_attributes_are_read_as_the_type_of_the_literal(tenant):
    values = {"int": 12, "float": 12.5, "numeric text": "12", "word": "twelve", "true": True, "list": [12], "null": None}
    for name, value in values.items():
        AccountFactory(tenant=tenant, name=name, attributes={"seats": value})
    AccountFactory(tenant=tenant, name="absent", attributes={})
    queryset = Account.objects.for_tenant(tenant)

    def names(text):
        return selected(compile_criteria(text, tenant=tenant), queryset)

    assert names("account.attributes.seats >= 12") == {"int", "float", "numeric text"}
    assert names('account.attributes.seats == "12"') == {"numeric text"}
    assert names("account.attributes.seats == true") == {"true"}
    assert names('account.attributes.seats contains "twe"') == {"word"}
    assert names("account.attributes.seats exists") == {"int", "float", "numeric text", "word", "true", "list"}
    assert names("not (account.attributes.seats > 0)") == {"word", "true", "list", "null", "absent"}


def test_dates_and_times_count_from_now_in_the_tenants_time_zone(tenant):
    tenant.timezone = "Pacific/Auckland"  # NOW (12:30 UTC) is already the next day there
    tenant.save()
    local_today = dt.date(2025, 6, 16)
    AccountFactory(tenant=tenant, name="renews today", renewal_date=local_today)
    AccountFactory(tenant=tenant, name="renewed yesterday", renewal_date=local_today - DAY)
    AccountFactory(tenant=tenant, name="trial ends in 2 days", trial_ends_at=NOW + 2 * DAY)
    AccountFactory(tenant=tenant, name="trial ended an hour ago", trial_ends_at=NOW - dt.timedelta(hours=1))
    queryset = Account.objects.for_tenant(tenant)

    def names(text):
        return selected(compile_criteria(text, tenant=tenant), queryset)

    assert names("account.renewal_date within 5 days") == {"renews today"}
    assert names("account.renewal_date == 1 day ago") == {"renewed yesterday"}
    assert names("account.trial_ends_at within 3 days") == {"trial ends in 2 days"}
    assert names("account.trial_ends_at within last 1 day") == {"trial ended an hour ago"}
    assert names("account.trial_ends_at > 1 day from now") == {"trial ends in 2 days"}


def test_contact_criteria_read_the_contacts_account(tenant):
    trial = AccountFactory(tenant=tenant, name="Trial Co", plan="trial", trial_ends_at=NOW + 2 * DAY)
    paying = AccountFactory(tenant=tenant, name="Paying Co", plan="pro", trial_ends_at=None)
    ContactFactory(account=trial, name="Ada", role="administrator", last_seen_at=NOW - 20 * DAY)
    ContactFactory(account=trial, name="Ben", role="user", last_seen_at=NOW - DAY)
    ContactFactory(account=paying, name="Cy", role="administrator", last_seen_at=None)
    contacts = Contact.objects.for_tenant(tenant)

    def names(text):
        return selected(compile_criteria(text, subject="contact", tenant=tenant), contacts)

    assert names('account.trial_ends_at within 3 days and contact.role == "administrator"') == {"Ada"}
    assert names("contact.last_seen_at < 14 days ago") == {"Ada"}
    assert names('account.plan == "pro" or contact.last_seen_at within last 2 days') == {"Ben", "Cy"}


def test_filter_is_one_query_whatever_the_number_of_accounts(tenant, test_fields, django_assert_num_queries):
    owner = UserFactory(email="owner@alpha.example")
    criteria = compile_criteria(
        'metric.logins_30d >= 10 and account.owner == "owner@alpha.example" and account.attributes.segment exists '
        "and not (account.renewal_date within 30 days)",
        tenant=tenant,
    )
    for count in (1, 40):
        AccountFactory.create_batch(count, tenant=tenant, owner=owner, attributes={"logins_30d": 11, "segment": "smb"})
        with django_assert_num_queries(1):
            matched = list(criteria.filter(Account.objects.for_tenant(tenant), now=NOW))
        assert len(matched) == Account.objects.for_tenant(tenant).count()


def test_filter_keeps_the_callers_tenant_scope(tenant, other_tenant):
    AccountFactory(tenant=tenant, name="Ours", plan="pro")
    AccountFactory(tenant=other_tenant, name="Theirs", plan="pro")
    criteria = compile_criteria('account.plan == "pro"', tenant=tenant)
    assert {a.name for a in criteria.filter(Account.objects.for_tenant(tenant))} == {"Ours"}


def test_explanation_gives_each_clause_its_value_and_verdict(tenant, test_fields, accounts):
    criteria = compile_criteria(
        'metric.logins_30d >= 10 and account.plan in ["pro", "team"] and not (account.card_expires_at within 30 days)',
        tenant=tenant,
    )
    explanation = criteria.explain(accounts["renewing"], now=NOW)
    assert explanation.passed is False
    assert explanation.as_text().splitlines() == [
        "metric.logins_30d is not set (needs >= 10): failed",
        'account.plan is "pro" (needs in ["pro", "team"]): passed',
        "account.card_expires_at is \"2025-06-25\" (needs within 30 days (2025-06-15 to 2025-07-15)): passed",
        "Overall: failed.",
    ]
    assert criteria.explain(accounts["active"], now=NOW).as_text().splitlines()[0] == (
        "metric.logins_30d is 25 (needs >= 10): passed"
    )
    stored = json.loads(json.dumps(explanation.as_dict()))
    assert stored["passed"] is False
    assert stored["clauses"][1] == {
        "text": 'account.plan in ["pro", "team"]',
        "field": "account.plan",
        "value": "pro",
        "expected": 'in ["pro", "team"]',
        "passed": True,
    }


def test_loaded_criteria_evaluate_like_the_compiled_ones(tenant, test_fields, queryset):
    compiled = compile_criteria('health.delta_7d <= -15 or stage == "renewal"', tenant=tenant)
    loaded = load_criteria(compiled.json, tenant=tenant)
    assert selected(loaded, queryset) == selected(compiled, queryset) == {"Quiet", "Free", "Renewing", "Lapsed"}
