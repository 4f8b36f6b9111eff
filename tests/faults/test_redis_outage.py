"""Redis stops and comes back while the API is in use: ingest keeps storing, nothing answers 5xx.

A real redis-server of the test's own, on a free port, is the cache (rate
limits, sign-in limits, the pipeline's debounce); the test stops it midway
and starts it again.
"""

import shutil
import socket
import subprocess
import time

import pytest
import redis
from django.utils import timezone

from csplatform.customers.models import UsageEvent
from csplatform.tenancy.api.throttling import ApiKeyRateThrottle
from tests.conftest import make_api_client
from tests.factories import AccountFactory

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, tmp_path):
        self.port = free_port()
        self.dir = tmp_path
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


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
