"""Access control: keys stored hashed, scopes per operation, revocation, throttling, sign-in limits."""

import base64
import io
import logging
import re

from django.core.management import call_command
from django.db import connection
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from csplatform.tenancy import ratelimit
from csplatform.tenancy.api.throttling import ApiKeyRateThrottle
from csplatform.tenancy.models import AuditLogEntry
from csplatform.tenancy.services import api_key_create, api_key_revoke

from .conftest import record_figure

SCOPES = ("read", "write", "ingest")
INGEST_PATH = re.compile(r"^/api/segment/|/events/batch")
# POSTs that compute an answer from the body and change nothing need read
# (the rule is in csplatform/tenancy/api/permissions.py).
READ_ONLY_POST = re.compile(r"/(validate|preview|backtest|simulate)/$")
MISSING_ID = "987654321"


def key_client(tenant, scopes, path=""):
    _, raw_key = api_key_create(tenant=tenant, name="scoped", scopes=list(scopes))
    client = APIClient()
    if path.startswith("/api/segment/"):
        client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{raw_key}:".encode()).decode())
    else:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def expected_scope(path, method):
    if INGEST_PATH.search(path):
        return "ingest"
    if method == "get" or READ_ONLY_POST.search(path):
        return "read"
    return "write"


def schema_operations():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, item in schema["paths"].items():
        for method in item:
            yield path, method


def test_the_plain_api_key_is_never_stored_or_logged(tenant, caplog):
    """Dump the whole database and every log line (SQL included) of a request: the key is nowhere."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    api_key, raw_key = api_key_create(tenant=tenant, name="secret", scopes=["read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    connection.force_debug_cursor = True
    try:
        assert client.get("/api/v1/whoami/").status_code == 200
        assert client.get("/api/v1/accounts/?search=x").status_code == 200
    finally:
        connection.force_debug_cursor = False
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)

    secret_part = raw_key[len(api_key.prefix) :]
    assert api_key.key_hash in dump.getvalue()
    assert raw_key not in dump.getvalue() and secret_part not in dump.getvalue()
    assert any("SELECT" in record.getMessage() for record in caplog.records), "SQL was not captured"
    assert not [r.getMessage() for r in caplog.records if secret_part in r.getMessage()]


def test_every_operation_needs_its_scope_and_only_that_one(tenant):
    """GET needs read, writes need write, ingest needs ingest; a key without it answers 403."""
    problems, tried = [], 0
    for path, method in schema_operations():
        url = re.sub(r"\{[^}]+\}", MISSING_ID, path)
        needed = expected_scope(path, method)
        for scopes in ([s for s in SCOPES if s != needed], [needed]):
            response = key_client(tenant, scopes, path).generic(method.upper(), url, "{}", content_type="application/json")
            tried += 1
            refused = response.status_code in (401, 403)
            if refused != (needed not in scopes):
                problems.append(f"{method.upper()} {path} with {scopes} -> {response.status_code}")
    record_figure("scope matrix: requests tried", tried)
    assert problems == [], "\n".join(problems)


def test_a_change_through_the_api_is_audited_as_the_keys_creator_via_the_key(tenant, alice):
    api_key, raw_key = api_key_create(tenant=tenant, name="CI sync", scopes=["write"], created_by=alice)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    assert client.post("/api/v1/stages/", {"key": "trial", "name": "Trial"}, format="json").status_code == 201

    entry = AuditLogEntry.objects.for_tenant(tenant).get(action="stage.created")
    assert entry.actor == alice
    assert entry.actor_label == f"{alice} via key CI sync ({api_key.prefix}…)"


def test_a_revoked_key_is_refused(tenant, alice):
    api_key, raw_key = api_key_create(tenant=tenant, name="leaving", scopes=["read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert client.get("/api/v1/whoami/").status_code == 200

    api_key_revoke(tenant=tenant, api_key=api_key, actor=alice)

    response = client.get("/api/v1/whoami/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_key_over_its_rate_answers_429_with_retry_after(tenant, monkeypatch):
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "3/min"})
    client = key_client(tenant, ["read"])
    statuses = [client.get("/api/v1/whoami/").status_code for _ in range(3)]
    response = client.get("/api/v1/whoami/")

    assert statuses == [200, 200, 200]
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert response.json()["error"]["status"] == 429


def sign_in(client, email, password, address="203.0.113.7"):
    return client.post("/login/", {"username": email, "password": password}, REMOTE_ADDR=address)


def signed_in(response):
    return response.status_code == 302


def test_sign_in_is_refused_after_too_many_failures_for_one_account(alice, client):
    for n in range(ratelimit.SIGN_IN_FAILURES.per_account):
        # From a different address each time: the account's own limit applies.
        assert not signed_in(sign_in(client, alice.email, "wrong", address=f"198.51.100.{n}"))

    response = sign_in(client, alice.email, "password", address="192.0.2.99")

    assert not signed_in(response)
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert signed_in(sign_in(client, "bob@alpha.example", "password", address="192.0.2.99")) is False


def test_sign_in_is_refused_after_too_many_failures_from_one_address(alice, bob, client):
    for n in range(ratelimit.SIGN_IN_FAILURES.per_address):
        sign_in(client, f"guess{n}@alpha.example", "wrong")

    assert not signed_in(sign_in(client, alice.email, "password"))
    assert signed_in(sign_in(client, bob.email, "password", address="192.0.2.1"))


def test_a_successful_sign_in_clears_the_accounts_failures(alice, client):
    for _ in range(ratelimit.SIGN_IN_FAILURES.per_account - 1):
        sign_in(client, alice.email, "wrong")
    assert signed_in(sign_in(client, alice.email, "password"))
    client.logout()

    for _ in range(ratelimit.SIGN_IN_FAILURES.per_account - 1):
        sign_in(client, alice.email, "wrong")
    assert signed_in(sign_in(client, alice.email, "password"))
