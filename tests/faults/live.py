"""What the fault tests that run the real app need: private servers, child processes, an ingest client.

Each server listens on a free loopback port with its files in a temporary
folder, so stopping one never touches the shared servers other runs depend on.
"""

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg2
import redis
from django.conf import settings
from django.utils import timezone

from bench.processes import BIN, child_env, free_port

POSTGRES_BIN = Path(os.environ.get("CSP_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))


def postgres_missing():
    """Why a private PostgreSQL cannot run here, or None when it can."""
    if not (POSTGRES_BIN / "initdb").exists():
        return f"needs the PostgreSQL server binaries in {POSTGRES_BIN} (CSP_POSTGRES_BIN)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "PostgreSQL refuses to run as root and runuser is missing"
    return None


class PostgresServer:
    """initdb into a temporary folder, trust authentication, stop and start on demand."""

    def __init__(self):
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="csp-postgres-"))
        self.data = self.root / "data"

    def url(self, database="postgres", user="postgres"):
        return f"postgres://{user}@127.0.0.1:{self.port}/{database}"

    def _run(self, program, *args):
        command = [str(POSTGRES_BIN / program), *args]
        if os.geteuid() == 0:
            # initdb and postgres refuse to run as root; the postgres OS user owns the folder.
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed: {result.stderr.strip()} (log: {self.root / 'server.log'})")

    def init(self):
        if os.geteuid() == 0:
            shutil.chown(self.root, user="postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")

    def start(self):
        # fsync off: the tests kill the server, never the machine, so the OS cache survives.
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, "-w", "start")

    def stop(self):
        """Stop at once, as a crash would: open transactions are lost, committed ones recovered."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def is_running(self):
        return (self.data / "postmaster.pid").exists()

    def query(self, sql, params=(), database="postgres"):
        """Run one statement as the superuser, outside any transaction; returns its rows, if any."""
        connection = psycopg2.connect(self.url(database))
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else None
        finally:
            connection.close()

    def remove(self):
        if self.is_running():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    def __init__(self, folder):
        self.port = free_port()
        self.dir = folder
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

    def is_running(self):
        return self.process is not None and self.process.poll() is None


def run_child(environment, *args, check=True):
    """Run `python <args>` with the app's environment overridden by `environment`; returns the result."""
    result = subprocess.run(
        [sys.executable, *args],
        env=child_env(**environment),
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


def wait_for(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class IngestClient(threading.Thread):
    """Posts event batches for `account` one after another until stopped.

    A batch answered 503 with Retry-After is sent again shortly, as a client
    would; any other answer but 200 is kept in `problems`.
    """

    def __init__(self, port, key, name, *, account, events_per_batch=20, pause=0.0):
        super().__init__(daemon=True)
        self.port, self.key, self.name, self.account = port, key, name, account
        self.events_per_batch, self.pause = events_per_batch, pause
        self.acknowledged = []
        self.statuses = Counter()
        self.problems = []
        self.stopping = threading.Event()

    def batch(self, number):
        now = timezone.now().isoformat()
        events = [
            {"message_id": f"{self.name}-{number}-{n}", "account": self.account, "event": "login", "timestamp": now}
            for n in range(self.events_per_batch)
        ]
        return [event["message_id"] for event in events], json.dumps({"events": events})

    def run(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        number = 0
        message_ids, body = self.batch(number)
        while not self.stopping.is_set():
            connection.request("POST", "/api/v1/events/batch", body=body, headers=headers)
            response = connection.getresponse()
            text = response.read()
            self.statuses[response.status] += 1
            if response.status == 200:
                self.acknowledged.extend(message_ids)
                number += 1
                message_ids, body = self.batch(number)
                time.sleep(self.pause)
            else:
                if not (response.status == 503 and response.getheader("Retry-After")):
                    self.problems.append((response.status, text[:300]))
                time.sleep(0.2)
        connection.close()

    def stop(self):
        self.stopping.set()
        if self.ident is not None:
            self.join(timeout=30)


class SupervisedWorker:
    """A Celery worker that is started again whenever it exits, as compose's `restart: unless-stopped` does.

    `restarts` counts the exits. Celery 5.7 with kombu 5.7 exits with
    "Unrecoverable error: AttributeError(... 'hostname')" when the Redis
    broker goes away while it holds unacknowledged messages.
    """

    def __init__(self, log_path):
        self.args = [str(BIN / "celery"), "-A", "csplatform", "worker", "--pool", "threads", "--concurrency", "2"]
        self.log_path = log_path
        self.restarts = 0
        self.stopping = threading.Event()
        self.process = None
        self.thread = threading.Thread(target=self.supervise, daemon=True)

    def supervise(self):
        with open(self.log_path, "a") as log:
            while not self.stopping.is_set():
                self.process = subprocess.Popen(
                    [*self.args, "--loglevel", "INFO"], env=child_env(), stdout=log, stderr=subprocess.STDOUT,
                    cwd=settings.BASE_DIR,
                )
                while self.process.poll() is None and not self.stopping.is_set():
                    time.sleep(0.2)
                if self.process.poll() is not None and not self.stopping.is_set():
                    self.restarts += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stopping.set()
        self.thread.join(timeout=10)
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
