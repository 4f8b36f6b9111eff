"""Property-based fuzzing of every documented API operation (schemathesis over /api/schema/).

Each operation gets generated requests, schema-valid and schema-invalid, with
a valid key: the API must never answer 5xx, and what it answers must match
the schema (body and content type). The normal suite runs a few examples per
operation and mode; `make fuzz` runs CSP_FUZZ_EXAMPLES (100) of each.
Failures are collected over all operations and reported together, each with
a curl line that reproduces it.
"""

import base64
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

from csplatform.tenancy.services import api_key_create
from playbooks.api.filtersets import TaskFilterSet
from tests.factories import AccountFactory, ContactFactory, TenantFactory

from .conftest import record_figure

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
