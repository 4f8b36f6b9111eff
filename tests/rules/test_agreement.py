"""The SQL and the Python evaluation of any criteria select the same accounts.

Hypothesis builds random criteria over typed fields (text, numbers, dates,
date-times, a join, JSON attributes of every type) and random accounts with
missing values, then compares `Criteria.filter()` with `Criteria.matches()`
and with the booleans `annotate_matches()` adds, two criteria to one query.
Runs on SQLite and, with DATABASE_URL, on PostgreSQL.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csplatform.customers.models import Account, Contact
from csplatform.rules import annotate_matches, compile_criteria
from tests.factories import AccountFactory, ContactFactory, UserFactory

from .conftest import NOW

pytestmark = pytest.mark.smoke

PLANS = ["", "pro", "team", "free", "Pro", "pro team"]
NUMBERS = [-1, 0, 5, 10, 10.5, 999.99, 1000]
SEGMENTS = ["smb", "enterprise", "", "SMB"]
TAGS = ["vip", "beta", "churn-risk"]
OWNERS = ["olivia@alpha.example", "oscar@alpha.example"]

days = st.integers(min_value=0, max_value=40)
strings = st.sampled_from(PLANS + SEGMENTS + TAGS)


def quoted(value):
    return f'"{value}"'


COMPARISONS = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
LIST_OPS = st.sampled_from(["in", "not in"])


def listed(values, render):
    return "[" + ", ".join(render(value) for value in values) + "]"


def number_clause(field):
    return st.one_of(
        st.builds(lambda op, n: f"{field} {op} {n}", COMPARISONS, st.sampled_from(NUMBERS)),
        st.builds(
            lambda op, ns: f"{field} {op} {listed(ns, str)}",
            LIST_OPS,
            st.lists(st.sampled_from(NUMBERS), min_size=1, max_size=3),
        ),
    )


def text_clause(field):
    return st.one_of(
        st.builds(lambda op, s: f"{field} {op} {quoted(s)}", st.sampled_from(["==", "!=", "contains"]), strings),
        st.builds(
            lambda op, ss: f"{field} {op} {listed(ss, quoted)}", LIST_OPS, st.lists(strings, min_size=1, max_size=3)
        ),
    )


def date_clause(field, iso):
    """Relative values, `within` both ways, and ISO literals `iso(n)` n days from NOW."""
    return st.one_of(
        st.builds(
            lambda op, n, when: f"{field} {op} {n} days {when}", COMPARISONS, days, st.sampled_from(["ago", "from now"])
        ),
        st.builds(lambda op, n: f"{field} {op} {n} days", st.sampled_from(["within", "within last"]), days),
        st.builds(lambda op, n: f"{field} {op} {quoted(iso(n))}", st.sampled_from(["<", ">=", "=="]), st.integers(-20, 20)),
    )


def exists_clause(field):
    return st.sampled_from([f"{field} exists", f"{field} not exists"])


ACCOUNT_CLAUSES = st.one_of(
    text_clause("account.plan"),
    number_clause("account.mrr"),
    date_clause("account.renewal_date", lambda n: (NOW.date() + dt.timedelta(days=n)).isoformat()),
    date_clause("account.trial_ends_at", lambda n: (NOW + dt.timedelta(days=n)).isoformat()),
    text_clause("account.owner"),
    number_clause("account.champions"),
    number_clause("account.attributes.seats"),
    text_clause("account.attributes.seats"),
    st.sampled_from(["account.attributes.seats == true", "account.attributes.seats != false"]),
    text_clause("account.attributes.segment"),
    st.builds(lambda s: f"account.attributes.tags contains {quoted(s)}", strings),
    *(
        exists_clause(f"account.{name}")
        for name in ("plan", "renewal_date", "owner", "attributes.seats", "attributes.segment", "attributes.tags")
    ),
)

CONTACT_CLAUSES = st.one_of(
    text_clause("contact.role"),
    date_clause("contact.last_seen_at", lambda n: (NOW + dt.timedelta(days=n)).isoformat()),
    st.sampled_from(["contact.unsubscribed == true", "contact.unsubscribed != true", "contact.title exists"]),
    number_clause("contact.attributes.seats"),
    text_clause("account.plan"),
    number_clause("account.mrr"),
    date_clause("account.renewal_date", lambda n: (NOW.date() + dt.timedelta(days=n)).isoformat()),
    number_clause("account.attributes.seats"),
    number_clause("account.champions"),
)


def trees(clauses):
    return st.recursive(
        clauses,
        lambda children: st.one_of(
            st.builds(lambda a, b: f"({a} and {b})", children, children),
            st.builds(lambda a, b: f"({a} or {b})", children, children),
            st.builds(lambda a: f"not ({a})", children),
        ),
        max_leaves=6,
    )


ATTRIBUTE_VALUES = st.one_of(
    st.none(),
    st.integers(-5, 1200),
    st.sampled_from([2.5, 10.0, 10.5, True, False, "12", "10.5", "-1", "abc", "", "1e3", " 5", [], ["vip"], {"a": 1}]),
    strings,
    st.lists(st.one_of(strings, st.integers(0, 3)), max_size=3),
)


@st.composite
def attributes(draw):
    values = {}
    for key in ("seats", "segment", "tags"):
        if draw(st.booleans()):
            values[key] = draw(ATTRIBUTE_VALUES)
    return values


maybe_day = st.none() | st.integers(-45, 45).map(lambda n: NOW.date() + dt.timedelta(days=n))
maybe_moment = st.none() | st.integers(-45 * 24, 45 * 24).map(lambda h: NOW + dt.timedelta(hours=h, minutes=17))

ACCOUNTS = st.lists(
    st.fixed_dictionaries(
        {
            "plan": st.sampled_from(PLANS),
            "mrr": st.sampled_from(NUMBERS).map(lambda n: Decimal(str(n))),
            "renewal_date": maybe_day,
            "trial_ends_at": maybe_moment,
            "owner": st.none() | st.sampled_from(OWNERS),
            "attributes": attributes(),
        }
    ),
    min_size=1,
    max_size=6,
)

CONTACTS = st.lists(
    st.fixed_dictionaries(
        {
            "account": st.integers(0, 5),
            "role": st.sampled_from(["administrator", "user", "billing", "champion"]),
            "title": st.sampled_from(["", "CTO"]),
            "last_seen_at": maybe_moment,
            "unsubscribed": st.booleans(),
            "attributes": attributes(),
        }
    ),
    max_size=6,
)


def create_accounts(tenant, rows, owners):
    accounts = []
    for row in rows:
        owner = owners[row["owner"]] if row["owner"] else None
        accounts.append(AccountFactory(tenant=tenant, **{**row, "owner": owner}))
    return accounts


def assert_every_path_agrees(criteria, queryset):
    in_sql = set(criteria.filter(queryset, now=NOW).values_list("pk", flat=True))
    in_python = {obj.pk for obj in queryset if criteria.matches(obj, now=NOW)}
    # Twice in one query, as alert rules are evaluated together: each reads the fields under names of its own.
    annotated = annotate_matches(queryset, {"first": criteria, "second": criteria}, now=NOW)
    rows = list(annotated.values_list("pk", "first", "second"))
    in_first = {pk for pk, first, _ in rows if first}
    in_second = {pk for pk, _, second in rows if second}
    assert in_sql == in_python == in_first == in_second, criteria.text


@pytest.fixture
def owners(db):
    # Made once per test, outside the per-example rollback: users hash passwords, which is slow.
    return {email: UserFactory(email=email) for email in OWNERS}


@pytest.fixture
def auckland_tenant(tenant):
    # Far from UTC, so "today" of the tenant and of the server differ for part of the day.
    tenant.timezone = "Pacific/Auckland"
    tenant.save()
    return tenant


# The tenant and owners are made once per test; each example rolls its own rows back.
FIXTURES_OUTLIVE_EXAMPLES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES_OUTLIVE_EXAMPLES)
@given(text=trees(ACCOUNT_CLAUSES), rows=ACCOUNTS)
def test_sql_and_python_select_the_same_accounts(auckland_tenant, owners, text, rows):
    criteria = compile_criteria(text, tenant=auckland_tenant)
    with transaction.atomic():
        create_accounts(auckland_tenant, rows, owners)
        assert_every_path_agrees(criteria, Account.objects.for_tenant(auckland_tenant))
        transaction.set_rollback(True)


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES_OUTLIVE_EXAMPLES)
@given(text=trees(CONTACT_CLAUSES), rows=ACCOUNTS, contact_rows=CONTACTS)
def test_sql_and_python_select_the_same_contacts(auckland_tenant, owners, text, rows, contact_rows):
    criteria = compile_criteria(text, subject="contact", tenant=auckland_tenant)
    with transaction.atomic():
        accounts = create_accounts(auckland_tenant, rows, owners)
        for row in contact_rows:
            account = accounts[row["account"] % len(accounts)]
            fields = {key: value for key, value in row.items() if key != "account"}
            ContactFactory(account=account, tenant=auckland_tenant, **fields)
        assert_every_path_agrees(criteria, Contact.objects.for_tenant(auckland_tenant))
        transaction.set_rollback(True)
