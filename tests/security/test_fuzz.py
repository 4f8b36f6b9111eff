"""Property-based fuzzing of every documented API operation (schemathesis over /api/schema/).

Each operation gets generated requests, schema-valid and schema-invalid, with
a valid key: the API must never answer 5xx, and what it answers must match
the schema (body and content type). The normal suite runs a few examples per
operation and mode; `make fuzz` runs CSP_FUZZ_EXAMPLES (100) of each.
Failures are collected over all operations and reported together, each with
a curl line that reproduces it.
"""

import base64
import datetime as dt
import json
import os
from urllib.parse import urlencode

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import DataError, close_old_connections, transaction
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

from csplatform.tenancy.api.parsers import MAX_DEPTH
from csplatform.tenancy.api.throttling import ApiKeyRateThrottle
from csplatform.tenancy.models import Scope
from csplatform.tenancy.services import api_key_create
from playbooks.api.filtersets import TaskFilterSet
from playbooks.models import EmailStatus, OutboundEmail
from tests.factories import AccountFactory, ContactFactory, TenantFactory

from .conftest import record_figure
from .world import build_world

EXAMPLES = int(os.environ.get("CSP_FUZZ_EXAMPLES", "3"))
# Query values that have broken list filters: NUL (PostgreSQL refuses it in
# text), non-ASCII and unicode emails, numbers past every integer type,
# LIKE wildcards and quotes, combining marks, bytes that are not UTF-8.
HOSTILE_VALUES = [
    "ünïcödé", "jürgen@bücher.example", "ÄDMIN@ALPHA.EXAMPLE", "𝔞𝔟𝔠", "a\u0301", "\x00", "a\x00b",
    "9" * 40, "-" + "9" * 40, "1e400", "NaN", "%", "_", "\\", "'", "", " ", "2024-13-45T99:00",
]
NOT_UTF8 = "%FF%FE"
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture
def headers(db):
    """Full-scope credentials of a tenant with a few accounts, so small generated ids sometimes hit real rows."""
    tenant = TenantFactory(slug="fuzzed")
    for account in AccountFactory.create_batch(3, tenant=tenant):
        ContactFactory(account=account)
    _, raw_key = api_key_create(tenant=tenant, name="fuzz", scopes=["read", "write", "ingest"])
    return {
        "bearer": {"Authorization": f"Bearer {raw_key}"},
        "segment": {"Authorization": "Basic " + base64.b64encode(f"{raw_key}:".encode()).decode()},
    }


def fuzz(operation, mode, credentials, tally):
    """Run the operation's generated cases; return the first failure's report, or None."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        tally["cases"] += 1
        # Each case in a savepoint of its own: on PostgreSQL a failed query
        # aborts the whole transaction, and one 500 must not fail every later case.
        savepoint = transaction.savepoint()
        try:
            case.call_and_validate(headers=credentials, checks=CHECKS)
        finally:
            transaction.savepoint_rollback(savepoint)

    try:
        run()
    # schemathesis reports its findings as a BaseExceptionGroup.
    except (Exception, BaseExceptionGroup) as failure:
        details = [failure, *getattr(failure, "exceptions", ())]
        return f"{operation.label} [{mode.value}]\n" + "\n".join(getattr(d, "message", None) or str(d) for d in details)
    return None


@pytest.fixture
def wsgi_app():
    """The real WSGI application, keeping the test's database connection open as Django's test client does."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.fuzz
def test_generated_requests_never_get_a_5xx_and_answers_match_the_schema(headers, wsgi_app):
    schema = schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app)
    tally = {"cases": 0, "operations": 0}
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        tally["operations"] += 1
        credentials = headers["segment" if operation.path.startswith("/api/segment/") else "bearer"]
        for mode in GenerationMode:
            failure = fuzz(operation, mode, credentials, tally)
            if failure:
                failures.append(failure)
    record_figure("schemathesis: operations fuzzed", tally["operations"])
    record_figure("schemathesis: cases fuzzed", tally["cases"])
    assert not failures, f"{len(failures)} failing operations:\n\n" + "\n\n".join(failures)


def list_filter_parameters():
    """(path, query parameter) of every list operation in the schema."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, item in schema["paths"].items():
        parameters = item.get("get", {}).get("parameters", [])
        if "{" not in path and not path.startswith("/api/segment/"):
            yield from ((path, p["name"]) for p in parameters if p["in"] == "query")


def test_every_list_filter_answers_2xx_or_400_to_hostile_values(headers, client):
    """A regression seen once by the fuzzer: GET /api/v1/tasks/?owner=<non-ASCII> answered 500."""
    failures, tried = [], 0
    for path, name in list_filter_parameters():
        for query in [urlencode({name: value}) for value in HOSTILE_VALUES] + [f"{name}={NOT_UTF8}"]:
            response = client.get(f"{path}?{query}", headers=headers["bearer"])
            tried += 1
            # An invalid page or cursor answers 404, as DRF's paginators do.
            if response.status_code not in (200, 400, 404 if name in ("page", "cursor") else 400):
                failures.append(f"GET {path}?{query} -> {response.status_code}")
    record_figure("list filters: hostile requests tried", tried)
    assert failures == [], "\n".join(failures)


def test_a_query_value_the_database_refuses_answers_400_not_500(headers, client, monkeypatch):
    """A database without some character in its encoding raises DataError on the filter's value."""

    def refuse(self, queryset):
        raise DataError('character with byte sequence 0xc3 0xbc in encoding "UTF8" has no equivalent in encoding "WIN866"')

    monkeypatch.setattr(TaskFilterSet, "filter_queryset", refuse)
    response = client.get("/api/v1/tasks/?owner=ops@b%C3%BCcher.example", headers=headers["bearer"])

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "A query value cannot be used by the database."


def nested(depth):
    """A valid JSON value `depth` levels deep, objects and lists alternating."""
    value = "bottom"
    for level in range(depth):
        value = {"a": value} if level % 2 else [value]
    return value


# Stands for the JSON number 1e400, which Python's decoder reads as infinity;
# json.dumps cannot write it, so the body text gets it by substitution.
HUGE_FLOAT = "__1e400__"
# Field values that have broken JSON APIs: NUL (PostgreSQL refuses it in
# text), integers past every column type, infinity, nesting just inside the
# parser's limit, astral, right-to-left and combining characters, and values
# of every wrong type.
HOSTILE_FIELD_VALUES = [
    "a\x00b", 10**40, -(10**40), "9" * 40, HUGE_FLOAT, nested(MAX_DEPTH - 5),
    "𝔞𝔟𝔠", "\u202eevil\u202c", "a\u0301\u0301\u0301", "",
    True, 1.5, None, [], {}, ["\x00"], {"\x00": "\x00"},
]


def resolve(schema, components):
    """The schema behind `$ref`s, taking the first of allOf/oneOf."""
    while True:
        if "$ref" in schema:
            schema = components[schema["$ref"].rsplit("/", 1)[1]]
        elif schema.get("allOf") or schema.get("oneOf"):
            schema = (schema.get("allOf") or schema["oneOf"])[0]
        else:
            return schema


def plausible(schema, components):
    """A value of the schema's type, plain enough to pass most validation, so hostile siblings reach deeper code."""
    schema = resolve(schema, components)
    if schema.get("enum"):
        return next(value for value in schema["enum"] if value is not None)
    kind, format_ = schema.get("type"), schema.get("format")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: plausible(properties[name], components) for name in schema.get("required", []) if name in properties}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return False
    return {
        "date-time": dt.datetime.now(dt.timezone.utc).isoformat(),
        "date": dt.date.today().isoformat(),
        "email": "someone@example.com",
        "uri": "https://example.com/hook",
    }.get(format_, "plain")


def json_body_operations():
    """(method, path, body schema, components) of every operation in the schema that takes a JSON body."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {}) if isinstance(operation, dict) else {}
            body = content.get("application/json") or content.get("*/*")
            if body:
                yield method.upper(), path, resolve(body["schema"], components), components


def hostile_bodies(body_schema, components):
    """A plausible body, then the same body with each hostile value in each field, one at a time."""
    base = plausible(body_schema, components)
    yield base
    for name in body_schema.get("properties", {}):
        for value in HOSTILE_FIELD_VALUES:
            yield {**base, name: value}


def body_text(body):
    return json.dumps(body).replace(json.dumps(HUGE_FLOAT), "1e400")


def error_shape_problem(response):
    """Why a 4xx answer is not in the API's error shape, or None."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return "body is not {'error': ...}"
    shaped = error.get("status") == response.status_code and all(isinstance(error.get(k), str) for k in ("code", "message"))
    return None if shaped else f"error is {error!r}"


@pytest.fixture
def world_client(db, client, monkeypatch):
    """A client with a key of every scope on a tenant with one row of each kind, unthrottled for the sweep."""
    world = build_world()
    # An email waiting for review, so that the approve and edit operations reach their bodies.
    OutboundEmail.objects.create(
        tenant=world["tenant"], account=world["account"], to_email="person@customer.example", subject="Hello",
        text="Hello", status=EmailStatus.PENDING_REVIEW, idempotency_key="fuzz-review",
    )
    _, raw_key = api_key_create(tenant=world["tenant"], name="fuzz bodies", scopes=Scope.values)
    monkeypatch.setattr(ApiKeyRateThrottle, "rate", "1000000/min", raising=False)
    client.raw_key = raw_key
    # A 500 is a finding to list with the others, not an exception that ends the sweep.
    client.raise_request_exception = False
    return client


def credentials(path, raw_key):
    if path.startswith("/api/segment/"):
        return {"Authorization": "Basic " + base64.b64encode(f"{raw_key}:".encode()).decode()}
    return {"Authorization": f"Bearer {raw_key}"}


def fill_path(path, client, raw_key):
    """The path with each `{param}` replaced by the param of a real row, found by listing the nearest collection."""
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        param, collection = path[start + 1 : end], path[:start]
        value = None
        while value is None and collection.count("/") > 3:
            response = client.get(collection, headers=credentials(collection, raw_key))
            data = response.json() if response.status_code == 200 else {}
            rows = data.get("results", []) if isinstance(data, dict) else data
            value = next((row[param] for row in rows if param in row), None)
            collection = collection[: collection.rstrip("/").rindex("/") + 1]
        assert value is not None, f"no row to fill {{{param}}} of {path}"
        path = path[:start] + str(value) + path[end + 1 :]
    return path


def test_every_json_body_field_answers_2xx_or_4xx_in_the_error_shape_to_hostile_values(world_client):
    failures, sent, accepted = [], 0, 0
    raw_key = world_client.raw_key
    for method, path, body_schema, components in json_body_operations():
        target = fill_path(path, world_client, raw_key)
        for body in hostile_bodies(body_schema, components):
            # Each request in a savepoint of its own, as in the schemathesis test above.
            savepoint = transaction.savepoint()
            response = world_client.generic(
                method, target, body_text(body), content_type="application/json", headers=credentials(path, raw_key)
            )
            transaction.savepoint_rollback(savepoint)
            sent += 1
            accepted += response.status_code < 300
            problem = "server error" if response.status_code >= 500 else None
            if 400 <= response.status_code < 500:
                problem = error_shape_problem(response)
            if problem:
                failures.append(f"{method} {target} {body_text(body)[:200]} -> {response.status_code}: {problem}")
    record_figure("hostile JSON bodies: requests sent", sent)
    record_figure("hostile JSON bodies: answered 2xx (reached the services)", accepted)
    assert failures == [], f"{len(failures)} failures:\n" + "\n".join(failures[:50])


DEEP_JSON = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/accounts/", DEEP_JSON),
        ("POST", "/api/v1/criteria/validate/", '{"criteria": ' + DEEP_JSON + "}"),
        ("PUT", "/api/v1/health/settings/", json.dumps(nested(MAX_DEPTH + 1))),
        ("POST", "/api/v1/events/batch/", DEEP_JSON),
        ("POST", "/api/segment/v1/track/", DEEP_JSON),
    ],
    ids=["accounts", "criteria", "just-past-the-limit", "ingest", "segment"],
)
def test_json_nested_too_deep_answers_400_naming_the_reason(headers, client, method, path, body):
    auth = headers["segment" if path.startswith("/api/segment/") else "bearer"]
    response = client.generic(method, path, body, content_type="application/json", headers=auth)

    assert response.status_code == 400
    assert response.json()["error"] == {
        "status": 400,
        "code": "parse_error",
        "message": f"JSON parse error - the document nests deeper than {MAX_DEPTH} levels.",
    }
