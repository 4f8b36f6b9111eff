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

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

from csplatform.tenancy.services import api_key_create
from tests.factories import AccountFactory, ContactFactory, TenantFactory

from .conftest import record_figure

EXAMPLES = int(os.environ.get("CSP_FUZZ_EXAMPLES", "3"))
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
