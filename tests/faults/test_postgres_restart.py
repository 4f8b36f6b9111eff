"""PostgreSQL restarts during ingest and during the pipeline: nothing acknowledged is lost, nothing half-applied.

A private PostgreSQL (initdb into a temporary folder, its own port) serves a
real gunicorn and the `recompute` command in child processes. The test stops
it at once, as a crash would, and starts it again; the shared server is never
touched. The app connects as an ordinary role, so row-level security applies
as in production.
"""

import subprocess
import sys
import time
from collections import Counter

import pytest
from django.conf import settings

from bench.processes import child_env, gunicorn
from tests.security.conftest import record_figure

from .live import IngestClient, PostgresServer, postgres_missing, run_child, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(postgres_missing() is not None, reason=str(postgres_missing()))]

APP_ROLE = "csp_app"
OUTAGE_SECONDS = 1.5
INGEST_RESTARTS = 2
INGEST_CLIENTS = 3
EVENTS_PER_BATCH = 20
PIPELINE_ACCOUNTS = 1500
PIPELINE_CHUNK = 50


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A migrated private server; the app's role owns the database but is no superuser."""
    server = PostgresServer()
    server.init()
    server.start()
    server.app_environment = {
        "DATABASE_URL": server.url(database="csp", user=APP_ROLE),
        "CSP_VAR_DIR": str(tmp_path_factory.mktemp("var")),
        "REDIS_URL": "",
    }
    try:
        server.query(f"CREATE ROLE {APP_ROLE} LOGIN")
        server.query(f"CREATE DATABASE csp OWNER {APP_ROLE}")
        run_child(server.app_environment, "manage.py", "migrate", "--noinput")
        yield server
    finally:
        server.remove()


def crash_and_restart(server):
    server.stop()
    time.sleep(OUTAGE_SECONDS)
    server.start()


def test_every_acknowledged_event_survives_a_postgres_restart_during_ingest_and_nothing_answers_500(
    postgres, settings, monkeypatch
):
    for name, value in postgres.app_environment.items():
        monkeypatch.setenv(name, value)
    settings.VAR_DIR = postgres.app_environment["CSP_VAR_DIR"]
    world = run_child(postgres.app_environment, "-m", "tests.faults.child_world", "ingest", "ingest-restart", "restart")
    key = world.stdout.split()[-1]

    with gunicorn(workers=2, threads=2) as port:
        clients = [
            IngestClient(port, key, f"client{n}", account="restart", events_per_batch=EVENTS_PER_BATCH)
            for n in range(INGEST_CLIENTS)
        ]
        for client in clients:
            client.start()

        def acknowledged():
            return sum(len(client.acknowledged) for client in clients)

        wait_for(lambda: acknowledged() >= 5 * EVENTS_PER_BATCH)
        for _ in range(INGEST_RESTARTS):
            crash_and_restart(postgres)
            after_restart = acknowledged()
            wait_for(lambda: acknowledged() >= after_restart + 5 * EVENTS_PER_BATCH)
        for client in clients:
            client.stop()

    statuses = sum((client.statuses for client in clients), Counter())
    problems = [problem for client in clients for problem in client.problems]
    sent = {message_id for client in clients for message_id in client.acknowledged}
    stored = {
        row[0]
        for row in postgres.query(
            "SELECT e.message_id FROM customers_usageevent e JOIN tenancy_tenant t ON t.id = e.tenant_id "
            "WHERE t.slug = 'ingest-restart'",
            database="csp",
        )
    }
    record_figure("postgres restart during ingest: restarts", INGEST_RESTARTS)
    record_figure("postgres restart during ingest: batches acknowledged", len(sent) // EVENTS_PER_BATCH)
    record_figure("postgres restart during ingest: answers by status", dict(sorted(statuses.items())))
    record_figure("postgres restart during ingest: acknowledged events verified stored", len(sent & stored))

    assert problems == [], "only 200, or 503 with Retry-After, while the database restarts"
    assert statuses[503] > 0, "the restart fell between requests; the outage was not observed"
    assert sent - stored == set(), "an acknowledged event was lost"


def stage_invariant_breaches(server, slug):
    """Accounts whose current stage is not the to-stage of their last transition (or that lack one of the two)."""
    return server.query(
        """
        WITH tenant AS (SELECT id FROM tenancy_tenant WHERE slug = %s),
        last AS (
            SELECT DISTINCT ON (account_id) account_id, to_stage_id FROM lifecycle_stagetransition
            WHERE tenant_id = (SELECT id FROM tenant) ORDER BY account_id, at DESC, id DESC
        ),
        current AS (SELECT account_id, stage_id FROM lifecycle_accountstage WHERE tenant_id = (SELECT id FROM tenant))
        SELECT coalesce(last.account_id, current.account_id) FROM last FULL JOIN current USING (account_id)
        WHERE last.to_stage_id IS DISTINCT FROM current.stage_id
        """,
        [slug],
        database="csp",
    )


def pipeline_counts(server, slug):
    (row,) = server.query(
        """
        SELECT
            (SELECT count(*) FROM lifecycle_stagetransition WHERE tenant_id = t.id),
            (SELECT count(*) FROM customers_dirtyaccount WHERE tenant_id = t.id),
            (SELECT count(*) FROM lifecycle_accountstage s JOIN lifecycle_stage st ON st.id = s.stage_id
             WHERE s.tenant_id = t.id AND st.key = 'paying')
        FROM tenancy_tenant t WHERE t.slug = %s
        """,
        [slug],
        database="csp",
    )
    return dict(zip(("transitions", "dirty", "paying"), row))


def test_a_postgres_restart_mid_pipeline_leaves_no_half_applied_stage_move_and_a_retry_completes(postgres):
    slug = "pipeline-restart"
    run_child(postgres.app_environment, "-m", "tests.faults.child_world", "pipeline", slug, str(PIPELINE_ACCOUNTS))
    recompute = ["manage.py", "recompute", slug, "--chunk-size", str(PIPELINE_CHUNK)]

    with subprocess.Popen(
        [sys.executable, *recompute],
        env=child_env(**postgres.app_environment),
        cwd=settings.BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as first_run:
        wait_for(lambda: pipeline_counts(postgres, slug)["transitions"] > 0)
        postgres.stop()
        _, error = first_run.communicate(timeout=60)
    postgres.start()
    interrupted = pipeline_counts(postgres, slug)
    breaches_after_crash = stage_invariant_breaches(postgres, slug)
    retry = run_child(postgres.app_environment, *recompute, check=False)
    final = pipeline_counts(postgres, slug)

    record_figure("postgres restart mid-pipeline: accounts moved before the crash", interrupted["paying"])
    record_figure("postgres restart mid-pipeline: accounts moved after the retry", final["paying"])
    assert first_run.returncode != 0 and "OperationalError" in error, "the interrupted run fails, not hangs"
    assert 0 < interrupted["paying"] < PIPELINE_ACCOUNTS, "the restart fell mid-run"
    assert breaches_after_crash == [], "a stage move was half applied"
    assert retry.returncode == 0, retry.stderr[-3000:]
    assert final == {"transitions": 2 * PIPELINE_ACCOUNTS, "dirty": 0, "paying": PIPELINE_ACCOUNTS}
    assert stage_invariant_breaches(postgres, slug) == []
