"""Parsing, validation, error messages, limits and the stored form of criteria."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csplatform.rules import CriteriaError, compile_criteria, fields_for, load_criteria

EXAMPLES = [
    ("account", 'metric.logins_30d >= 10 and account.plan in ["pro", "team"]'),
    ("contact", 'account.trial_ends_at within 3 days and contact.role == "administrator"'),
    ("account", 'stage == "renewal" and account.card_expires_at within 30 days'),
    ("account", "not (account.attributes.segment exists) or account.mrr > 1000"),
    ("contact", "contact.last_seen_at < 14 days ago"),
    ("account", "health.delta_7d <= -15"),
]

MORE = [
    "account.signup_date within last 7 days",
    "account.renewal_date > 2 days from now",
    'account.renewal_date >= "2025-01-31"',
    'account.name contains "Acme" or (account.plan != "free" and account.mrr < 10.5)',
    'account.plan not in ["free"] and account.owner exists',
    "account.attributes.seats >= 3 and account.attributes.beta == true",
    'account.attributes.tags contains "vip"',
    "account.domain not exists",
    "not (not (account.mrr == 0))",
    '(account.mrr > 1 or account.mrr < -1) and (account.plan == "a" or account.plan == "b")',
    'account.name == "quote \\" and backslash \\\\ and ünïcode"',
]


@pytest.mark.parametrize("subject,text", EXAMPLES)
def test_each_documented_example_compiles(tenant, test_fields, subject, text):
    criteria = compile_criteria(text, subject=subject, tenant=tenant)
    assert criteria.text == text


@pytest.mark.parametrize("subject,text", EXAMPLES + [("account", text) for text in MORE])
def test_text_round_trips_through_json(tenant, test_fields, subject, text):
    criteria = compile_criteria(text, subject=subject, tenant=tenant)
    loaded = load_criteria(criteria.json, subject=subject, tenant=tenant)
    assert loaded.text == criteria.text
    assert loaded.json == criteria.json
    assert compile_criteria(loaded.text, subject=subject, tenant=tenant).json == criteria.json


def test_canonical_text_normalises_spacing_null_and_parentheses(tenant):
    criteria = compile_criteria(
        '((account.plan=="pro"))\n  and account.domain == null or account.mrr>1 and not account.name exists',
        tenant=tenant,
    )
    assert criteria.text == (
        '(account.plan == "pro" and account.domain not exists) or (account.mrr > 1 and not (account.name exists))'
    )


def test_an_unknown_field_is_named_with_close_matches_and_its_position(tenant):
    with pytest.raises(CriteriaError) as caught:
        compile_criteria('account.plan == "pro"\n  and account.mmr > 10', tenant=tenant)
    error = caught.value
    assert error.field == "account.mmr"
    assert (error.line, error.column, error.position) == (2, 7, 28)
    assert "account.mrr" in error.message
    assert str(error) == "Line 2, column 7: Unknown field account.mmr for account criteria. Did you mean account.mrr?"


def test_contact_fields_are_unknown_to_account_criteria(tenant):
    with pytest.raises(CriteriaError, match="Unknown field contact.role for account criteria"):
        compile_criteria('contact.role == "user"', tenant=tenant)


@pytest.mark.parametrize(
    "text,message",
    [
        ("account.plan > 3", "account.plan is text; '>' needs a number or a date."),
        ("account.mrr within 3 days", "account.mrr is a number; 'within' needs a date field."),
        ('account.mrr == "ten"', "account.mrr is a number; it cannot be compared with text"),
        ('account.plan in ["pro", 3]', "the list after 'in' must hold values of one type"),
        ("account.renewal_date == 3", "account.renewal_date is a date; it cannot be compared with a number"),
        ('account.renewal_date == "next week"', "'next week' is not a date for account.renewal_date"),
        ("account.mrr contains 3", "'contains' needs a string"),
        ("account.plan < 3 days ago", "'days ago' and 'days from now' need a date field"),
    ],
)
def test_a_mistyped_clause_is_refused_with_the_field_and_position(tenant, text, message):
    with pytest.raises(CriteriaError) as caught:
        compile_criteria("account.mrr > 0 and " + text, tenant=tenant)
    assert message in caught.value.message
    assert caught.value.field == text.split()[0]
    assert (caught.value.line, caught.value.column) == (1, 21)


@pytest.mark.parametrize(
    "text,column,message",
    [
        ('account.plan = "pro"', 14, "Unexpected character '=' (use == to compare)"),
        ("account.mrr >", 14, "The criteria end too early"),
        ("(account.mrr > 1", 17, "expected ')'"),
        ('account.plan in ["pro",]', 24, "Unexpected ']'"),
        ("account.plan in []", 17, "The list after 'in' is empty."),
        ("account.mrr > 1 and )", 21, "Unexpected ')'"),
        ('account.plan == "pro" "team"', 23, "Unexpected '\"team\"'"),
        ("account.mrr > 1e999", 15, "The number 1e999 is too large."),
        ("account.signup_date within 1.5 days", 28, "A number of days must be a whole number"),
        ("account.signup_date within 99999 days", 28, "A number of days must be a whole number from 0 to 36500"),
        ('account.name == "\\q"', 17, "invalid escape"),
    ],
)
def test_a_syntax_error_points_at_its_column(tenant, text, column, message):
    with pytest.raises(CriteriaError) as caught:
        compile_criteria(text, tenant=tenant)
    assert message in caught.value.message
    assert caught.value.column == column
    assert caught.value.position == column - 1
    assert str(caught.value).startswith(f"Line 1, column {column}: ")


def test_text_longer_than_the_limit_is_refused(tenant):
    text = " or ".join(f'account.name == "{"x" * 10}{i}"' for i in range(80))
    assert len(text) > 2000
    with pytest.raises(CriteriaError, match="at most 2000 characters"):
        compile_criteria(text, tenant=tenant)


def test_more_than_a_hundred_clauses_are_refused(tenant):
    text = " or ".join(f"account.mrr>{i}" for i in range(101))
    with pytest.raises(CriteriaError, match="at most 100 conditions; this one has 101"):
        compile_criteria(text, tenant=tenant)
    assert compile_criteria(" or ".join(f"account.mrr>{i}" for i in range(100)), tenant=tenant)


def test_nesting_deeper_than_twenty_levels_is_refused(tenant):
    def nested(levels):
        text = "account.mrr > 0"
        for _ in range(levels):
            text = f"not ({text})"
        return text

    assert compile_criteria(nested(20), tenant=tenant)
    with pytest.raises(CriteriaError, match="at most 20 levels deep"):
        compile_criteria(nested(21), tenant=tenant)
    # Parentheses that group nothing new add no depth, however many there are.
    redundant = compile_criteria("(" * 400 + "account.mrr > 0 or account.mrr < 0" + ")" * 400, tenant=tenant)
    assert redundant.text == "account.mrr > 0 or account.mrr < 0"


def test_empty_criteria_are_refused(tenant):
    with pytest.raises(CriteriaError, match="Criteria are empty"):
        compile_criteria("  \n ", tenant=tenant)


def test_an_unknown_subject_is_refused(tenant):
    with pytest.raises(CriteriaError, match="Unknown criteria subject 'user'"):
        compile_criteria("account.mrr > 0", subject="user", tenant=tenant)


@pytest.mark.parametrize(
    "data",
    [
        None,
        "account.mrr > 1",
        {"op": "xor"},
        {"op": "and", "args": [{"op": "exists", "field": "account.mrr"}]},
        {"op": ">", "field": "account.mrr"},
        {"op": ">", "field": "account mrr", "value": 1},
        {"op": "in", "field": "account.plan", "values": "pro"},
        {"op": "in", "field": "account.plan", "values": []},
        {"op": "within", "field": "account.signup_date", "days": -1},
        {"op": "<", "field": "account.signup_date", "value": {"days_ago": "3"}},
        {"op": "==", "field": "account.mrr", "value": float("nan")},
        {"op": "not", "arg": {"op": "==", "field": "account.plann", "value": "pro"}},
    ],
)
def test_malformed_stored_criteria_raise_criteria_error(tenant, data):
    with pytest.raises(CriteriaError):
        load_criteria(data, tenant=tenant)


def test_stored_criteria_are_validated_against_the_limits(tenant):
    deep = {"op": "exists", "field": "account.mrr"}
    for _ in range(25):
        deep = {"op": "not", "arg": deep}
    with pytest.raises(CriteriaError, match="at most 20 levels deep"):
        load_criteria(deep, tenant=tenant)
    wide = {"op": "or", "args": [{"op": "==", "field": "account.mrr", "value": i} for i in range(101)]}
    with pytest.raises(CriteriaError, match="at most 100 conditions"):
        load_criteria(wide, tenant=tenant)


def test_fields_for_lists_account_fields_for_contacts_too(tenant):
    account_names = {field.name for field in fields_for("account", tenant)}
    contact_names = {field.name for field in fields_for("contact", tenant)}
    assert {"account.plan", "account.mrr", "account.owner", "account.trial_ends_at"} <= account_names
    assert {"contact.email", "contact.last_seen_at", "account.plan"} <= contact_names
    assert not any(name.startswith("contact.") for name in account_names)


ALPHABET = st.sampled_from(list('account.plan mrr attributes"[],()=!<>-0123456789 and or not in exists within days\\\n'))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=120), st.text(alphabet=ALPHABET, max_size=120)))
def test_any_text_compiles_or_raises_criteria_error(tenant, text):
    try:
        criteria = compile_criteria(text, tenant=tenant)
    except CriteriaError as error:
        assert str(error)
    else:
        assert compile_criteria(criteria.text, tenant=tenant).json == criteria.json


KEYS = st.sampled_from(["op", "args", "arg", "field", "value", "values", "days"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=20,
)
OPS = st.sampled_from(["and", "or", "not", "==", "in", "exists", "within", "contains", "<"])


NODES = st.fixed_dictionaries(
    {"op": OPS, "field": st.sampled_from(["account.mrr", "account.plan", "x"])},
    optional={"value": JSON, "values": JSON, "days": JSON, "args": JSON, "arg": JSON},
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(JSON, NODES))
def test_any_stored_json_loads_or_raises_criteria_error(tenant, data):
    try:
        criteria = load_criteria(data, tenant=tenant)
    except CriteriaError as error:
        assert str(error)
    else:
        assert load_criteria(criteria.json, tenant=tenant).text == criteria.text
