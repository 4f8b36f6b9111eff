"""Redis stops and comes back while the API is in use: ingest keeps storing, nothing answers 5xx,
the dashboard pages still answer, and the pipeline catches up within twice the outage.

A real redis-server of the test's own, on a free port, is the cache (rate
limits, sign-in limits, the pipeline's debounce) and, in the second test,
the broker of a real gunicorn, Celery worker and beat; the test stops it
midway and starts it again. The shared Redis is never touched.
"""

import shutil
import sqlite3
import time

import pytest
from django.utils import timezone

from bench.processes import BIN, gunicorn, running
from csplatform.customers.models import UsageEvent
from csplatform.tenancy.api.throttling import ApiKeyRateThrottle
from tests.conftest import make_api_client
from tests.factories import AccountFactory
from tests.security.conftest import record_figure

from .live import IngestClient, RedisServer, SupervisedWorker, run_child, wait_for

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


@pytest.fixture
def redis_server(tmp_path, settings):
    server = RedisServer(tmp_path)
    server.start()
    previous = settings.CACHES
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": server.url}}
    yield server
    settings.CACHES = previous
    if server.process.poll() is None:
        server.stop()


def batch(prefix, count=5):
    now = timezone.now().isoformat()
    items = [{"message_id": f"{prefix}-{n}", "account": "outage", "event": "login", "timestamp": now} for n in range(count)]
    return {"events": items}


def throttled_after(client, budget):
    statuses = [client.get("/api/v1/whoami/").status_code for _ in range(budget + 1)]
    return statuses[-1] == 429 and statuses[:-1] == [200] * budget


def test_ingest_and_reads_keep_working_while_redis_is_down_and_limits_return_with_it(
    redis_server, tenant, alice, client, monkeypatch
):
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "3/min"})
    AccountFactory(tenant=tenant, external_id="outage")
    ingest = make_api_client(tenant, scopes=["ingest", "read"])

    assert ingest.post("/api/v1/events/batch", batch("before"), format="json").status_code == 200
    assert throttled_after(make_api_client(tenant, scopes=["read"]), 3), "the rate limit lives in this Redis"

    redis_server.stop()
    during = [ingest.post("/api/v1/events/batch", batch(f"during-{n}"), format="json").status_code for n in range(5)]
    reader = make_api_client(tenant, scopes=["read"])
    reads = [reader.get("/api/v1/whoami/").status_code for _ in range(5)]
    sign_in = client.post("/login/", {"username": alice.email, "password": "wrong"})

    assert during == [200] * 5
    assert reads == [200] * 5, "without Redis the rate limit is skipped, not the request"
    assert sign_in.status_code == 200
    assert UsageEvent.objects.for_tenant(tenant).count() == 5 + 5 * 5

    redis_server.start()
    assert throttled_after(make_api_client(tenant, scopes=["read"]), 3), "limits apply again once Redis is back"



def test_the_portfolio_and_the_board_answer_while_redis_is_down(redis_server, tenant, alice, client):
    AccountFactory(tenant=tenant, name="Outage Ltd")
    client.force_login(alice)
    redis_server.stop()

    portfolio, board = client.get(f"/t/{tenant.slug}/"), client.get(f"/t/{tenant.slug}/board/")

    assert (portfolio.status_code, board.status_code) == (200, 200)
    assert "Outage Ltd" in portfolio.content.decode()


OUTAGE_SECONDS = 8


@pytest.mark.e2e
def test_after_a_redis_outage_the_pipeline_catches_up_within_twice_the_outage(
    redis_server, tmp_path, settings, monkeypatch
):
    """Events that arrive while Redis is down are stored but cannot be scheduled; once Redis is back,
    the next recompute (scheduled by the traffic that follows, or the minute sweep) takes them too.

    The catch-up time runs from Redis's return until no account touched during the outage is dirty.
    """
    server = redis_server
    # The embedded database under the test's own folder: the processes below share it.
    environment = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'csplatform.sqlite3'}",
        "CSP_VAR_DIR": str(tmp_path / "var"),
        "REDIS_URL": server.url,
    }
    run_child(environment, "manage.py", "migrate", "--noinput")
    world = run_child(environment, "-m", "tests.faults.child_world", "ingest", "redis-outage", "steady", "outage")
    key = world.stdout.split()[-1]
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings.VAR_DIR = environment["CSP_VAR_DIR"]

    def count(sql, params):
        with sqlite3.connect(tmp_path / "csplatform.sqlite3") as database:
            return database.execute(sql, params).fetchone()[0]

    def dirty(external_id):
        sql = (
            "SELECT count(*) FROM customers_dirtyaccount mark JOIN customers_account a ON a.id = mark.account_id "
            "WHERE a.external_id = ?"
        )
        return count(sql, [external_id]) > 0

    def stored(message_ids):
        markers = ", ".join("?" * len(message_ids))
        return count(f"SELECT count(*) FROM customers_usageevent WHERE message_id IN ({markers})", message_ids)

    beat = [str(BIN / "celery"), "-A", "csplatform", "beat", "--schedule", str(tmp_path / "beat-schedule")]
    with (
        gunicorn(workers=1, threads=2) as port,
        SupervisedWorker(tmp_path / "celery-worker.log") as worker,
        running(beat, log_name="celery-beat"),
    ):
        steady = IngestClient(port, key, "steady", account="steady", events_per_batch=5, pause=0.5)
        during = IngestClient(port, key, "outage", account="outage", events_per_batch=5, pause=0.2)
        try:
            steady.start()
            wait_for(lambda: steady.acknowledged and not dirty("steady"), timeout=60)

            server.stop()
            outage_started = time.monotonic()
            during.start()
            time.sleep(OUTAGE_SECONDS)
            during.stop()
            server.start()
            back_at = time.monotonic()
            outage = back_at - outage_started
            assert dirty("outage"), "the outage's events wait for the pipeline"

            wait_for(lambda: not dirty("outage"), timeout=2 * outage + 30)
            catch_up = time.monotonic() - back_at
        finally:
            steady.stop()
            during.stop()

    record_figure("redis outage: outage seconds", round(outage, 1))
    record_figure("redis outage: pipeline catch-up seconds", round(catch_up, 1))
    record_figure("redis outage: batches stored while Redis was down", len(during.acknowledged) // 5)
    record_figure("redis outage: worker restarts by its supervisor", worker.restarts)
    assert steady.problems == [] and during.problems == [], "ingest answers 200 whether Redis is up or not"
    assert during.acknowledged, "ingest went on while Redis was down"
    assert stored(during.acknowledged) == len(during.acknowledged), "every acknowledged event is in the database"
    assert catch_up <= 2 * outage
