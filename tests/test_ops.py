"""Operational surface: health endpoints, the sign-in page, the deploy checks, request ids and log lines."""

import datetime as dt
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import uuid

import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.utils import timezone

from csplatform.celery import app as celery_app
from csplatform.customers.services import account_mark_dirty
from tests.factories import AccountFactory


def closed_port():
    """A loopback port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unreachable_database(django_db_blocker, tmp_path):
    """Swap the default connection for one to a database that cannot be opened."""
    if connection.vendor == "sqlite":
        unreachable = {"NAME": str(tmp_path / "missing" / "csplatform.sqlite3")}
    else:
        unreachable = {"HOST": "127.0.0.1", "PORT": str(closed_port())}
    original = connections[DEFAULT_DB_ALIAS]
    broken = type(original)({**original.settings_dict, **unreachable}, DEFAULT_DB_ALIAS)
    connections[DEFAULT_DB_ALIAS] = broken
    try:
        with django_db_blocker.unblock():
            yield
    finally:
        connections[DEFAULT_DB_ALIAS] = original
        broken.close()


@pytest.fixture
def unreachable_broker(monkeypatch):
    monkeypatch.setitem(celery_app.conf, "broker_url", f"redis://127.0.0.1:{closed_port()}/0")


@pytest.mark.smoke
def test_healthz_answers_ok_without_touching_the_database(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.smoke
def test_readyz_answers_ok_when_database_and_broker_answer(client, db):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_readyz_answers_503_naming_the_database_when_it_is_unreachable(client, unreachable_database):
    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("error: OperationalError")
    assert body["checks"]["broker"] == "ok"


def test_readyz_answers_503_naming_the_broker_when_it_is_unreachable(client, db, unreachable_broker):
    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("error: ")


@pytest.mark.smoke
def test_login_page_shows_the_sign_in_form(client, db):
    response = client.get("/login/")

    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="username"' in page
    assert 'name="password"' in page
    assert "Sign in" in page


def run_manage(tmp_path, *args, **env):
    """Run manage.py in a fresh interpreter, so settings are read from `env` as at deployment."""
    environ = {key: value for key, value in os.environ.items() if key not in ("DEBUG", "SECRET_KEY", "SECRET_KEY_FILE")}
    environ.update(CSP_VAR_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "csp.example.com",
    "CSP_ALLOW_DEV_SECRET": "0",
}


def test_security_checks_are_clean_with_production_settings(tmp_path):
    result = run_manage(tmp_path, "check", "--deploy", "--tag", "security", "--fail-level", "WARNING", **PRODUCTION)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    """All deploy checks, the OpenAPI schema's included (drf-spectacular runs it under --deploy)."""
    result = run_manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_flags_the_built_in_development_secret_key(tmp_path):
    result = run_manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", DEBUG="0")

    assert result.returncode != 0
    assert "security.W009" in result.stderr


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = run_manage(tmp_path, "check", DEBUG="0", CSP_ALLOW_DEV_SECRET="0")

    assert result.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set" in result.stderr


def test_secret_key_is_read_from_the_file_named_by_secret_key_file(tmp_path):
    key = secrets.token_urlsafe(50)
    key_file = tmp_path / "secret_key"
    key_file.write_text(key + "\n")

    result = run_manage(
        tmp_path,
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY)",
        DEBUG="0",
        CSP_ALLOW_DEV_SECRET="0",
        SECRET_KEY_FILE=str(key_file),
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == key


# Request ids and log lines


def test_every_answer_names_a_request_id_and_keeps_the_uuid_a_client_sent(client):
    sent = uuid.uuid4().hex

    kept = client.get("/healthz", HTTP_X_REQUEST_ID=sent)
    first, second = client.get("/healthz"), client.get("/healthz")

    assert kept["X-Request-ID"] == sent
    assert re.fullmatch(r"[0-9a-f]{32}", first["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_a_request_id_that_is_not_a_uuid_is_replaced_so_it_cannot_write_into_the_logs(client):
    answer = client.get("/healthz", HTTP_X_REQUEST_ID='x" level=critical')

    assert re.fullmatch(r"[0-9a-f]{32}", answer["X-Request-ID"])


REQUEST_IN_A_FRESH_PROCESS = """
from django.test import Client
Client().get("/api/v1/accounts/", HTTP_X_REQUEST_ID="{request_id}")
"""


def test_with_log_format_json_each_log_line_is_a_json_object_naming_the_request_id(tmp_path):
    request_id = uuid.uuid4().hex

    result = run_manage(
        tmp_path, "shell", "--no-imports", "-c", REQUEST_IN_A_FRESH_PROCESS.format(request_id=request_id),
        LOG_FORMAT="json",
    )

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    refused = next(line for line in lines if line["logger"] == "django.request")
    assert refused["level"] == "WARNING" and refused["message"] == "Unauthorized: /api/v1/accounts/"
    assert refused["request_id"] == request_id
    assert refused["time"].endswith("+00:00")


def test_plain_log_lines_name_the_request_id_in_brackets_and_other_formats_are_refused(tmp_path):
    request_id = uuid.uuid4().hex

    plain = run_manage(tmp_path, "shell", "--no-imports", "-c", REQUEST_IN_A_FRESH_PROCESS.format(request_id=request_id))
    unknown = run_manage(tmp_path, "check", LOG_FORMAT="xml")

    assert f"WARNING MainProcess django.request [{request_id}] Unauthorized: /api/v1/accounts/" in plain.stderr
    assert unknown.returncode != 0 and "LOG_FORMAT must be plain or json, not 'xml'" in unknown.stderr


# Metrics for Prometheus


def scrape(client, token="scrape-me"):
    return client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")


def samples(response):
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


@pytest.fixture
def metrics_token(settings):
    settings.CSP_METRICS_TOKEN = "scrape-me"


def overdue_step_run(tenant, seconds):
    from playbooks.models import Playbook, Run, Step, StepRun

    account = AccountFactory(tenant=tenant)
    playbook = Playbook.objects.create(tenant=tenant, key="welcome", name="Welcome", trigger_type="manual")
    step = Step.objects.create(tenant=tenant, playbook=playbook, position=1, kind="create_task")
    run = Run.objects.create(tenant=tenant, playbook=playbook, account=account, started_at=timezone.now())
    due_at = timezone.now() - dt.timedelta(seconds=seconds)
    return StepRun.objects.create(tenant=tenant, run=run, step=step, due_at=due_at, status="pending")


def test_metrics_name_each_backlog_and_how_far_each_tenant_is_behind(client, tenant, other_tenant, metrics_token):
    overdue_step_run(tenant, 90)
    account_mark_dirty(tenant=tenant, account_ids=[AccountFactory(tenant=tenant).pk for _ in range(3)])

    response = scrape(client)

    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=")
    found = samples(response)
    assert found[("csp_step_runs_due", ())] == 1
    assert 90 <= found[("csp_step_runs_due_lag_seconds", ())] < 150
    assert found[("csp_webhook_deliveries_due", ())] == 0 and found[("csp_notifications_due", ())] == 0
    assert found[("csp_accounts_waiting", (("tenant", "alpha"),))] == 3
    assert found[("csp_results_behind_seconds", (("tenant", "alpha"),))] >= 0
    assert found[("csp_accounts_waiting", (("tenant", "beta"),))] == 0


def test_metrics_want_the_bearer_token_and_are_off_without_one(client, db, settings, metrics_token):
    assert scrape(client, token="guess").status_code == 401
    assert client.get("/metrics").status_code == 401
    settings.CSP_METRICS_TOKEN = ""
    assert scrape(client, token="").status_code == 404


def test_metrics_answer_503_naming_the_database_when_it_is_unreachable(client, unreachable_database, metrics_token):
    response = scrape(client)

    assert response.status_code == 503 and "The database did not answer" in response.content.decode()
