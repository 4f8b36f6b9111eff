"""The real server and workers as subprocesses, and keep-alive HTTP clients to drive them."""

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

BIN = Path(sys.executable).parent
# The bench's server runs as the Dockerfile and the Compose file run it: three sync workers, each handling one
# request at a time (requests handled at once = WORKERS * THREADS).
WORKERS, THREADS = 3, 1
# gunicorn's own time for each request, %(D)s: from a worker taking it to the last byte of the answer.
ACCESS_LOG_FORMAT = "%(m)s %(U)s %(s)s %(D)s"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(**extra):
    # Throttling would cap the very rate being measured.
    return {**os.environ, "CSP_API_RATE": "100000000/min", "CSP_SECURE_COOKIES": "0", **extra}


@contextmanager
def running(args, *, log_name, ready=None, timeout=60):
    """Run a subprocess for the duration of the block; its output goes to var/bench/<log_name>.log."""
    log_path = Path(settings.VAR_DIR) / "bench" / f"{log_name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        process = subprocess.Popen(args, env=child_env(), stdout=log, stderr=subprocess.STDOUT, cwd=settings.BASE_DIR)
        try:
            deadline = time.monotonic() + timeout
            while ready is not None and not ready():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{log_name} did not start; see {log_path}")
                time.sleep(0.2)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def answers(port):
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False


def access_log_path():
    return Path(settings.VAR_DIR) / "bench" / "gunicorn-access.log"


@contextmanager
def gunicorn(workers=WORKERS, threads=THREADS):
    port = free_port()
    args = [
        str(BIN / "gunicorn"), "csplatform.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        "--threads", str(threads), "--no-control-socket", "--keep-alive", "30", "--timeout", "120",
        "--access-logfile", str(access_log_path()), "--access-logformat", ACCESS_LOG_FORMAT,
    ]
    access_log_path().unlink(missing_ok=True)
    with running(args, log_name="gunicorn", ready=lambda: answers(port)):
        yield port


@contextmanager
def celery_worker_and_beat():
    celery = str(BIN / "celery")
    worker = [celery, "-A", "csplatform", "worker", "--concurrency", "4", "--loglevel", "INFO"]
    beat = [celery, "-A", "csplatform", "beat", "--loglevel", "INFO", "--schedule",
            str(Path(settings.VAR_DIR) / "bench" / "celerybeat-schedule")]
    with running(worker, log_name="celery-worker"), running(beat, log_name="celery-beat"):
        yield


def drive(port, requests, clients):
    """Send `requests` [(method, path, body bytes or None, headers)] from `clients` connections at once.

    Each client keeps its connection open as long as the server does (a sync
    worker closes it after each answer; the client then opens a new one).

    Returns (latencies in seconds, wall seconds, statuses seen). Requests are
    dealt round-robin so every client carries the same load.
    """
    latencies, statuses = [], {}
    lock = threading.Lock()

    def client(share):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        mine = []
        for method, path, body, headers in share:
            start = time.perf_counter()
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - start)
            with lock:
                statuses[response.status] = statuses.get(response.status, 0) + 1
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(requests[i::clients],)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - start, statuses


def drive_served(port, requests, clients, timeout=10):
    """drive(), and the seconds the server spent on each of these requests by its access log.

    The client's time adds the wait for a free worker: with more clients
    than the server handles at once, each request queues behind the others.
    """
    log_path = access_log_path()
    offset = log_path.stat().st_size
    latencies, _, statuses = drive(port, requests, clients)
    # gunicorn writes a request's line after its answer is sent: the last few may trail the clients.
    deadline = time.monotonic() + timeout
    while True:
        with open(log_path, "rb") as log:
            log.seek(offset)
            lines = log.read().decode().splitlines(keepends=True)
        lines = [line for line in lines if line.endswith("\n")]
        if len(lines) >= len(requests) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if len(lines) != len(requests):
        raise RuntimeError(f"{log_path} has {len(lines)} lines for the {len(requests)} requests sent.")
    return latencies, [int(line.split()[-1]) / 1_000_000 for line in lines], statuses


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]
