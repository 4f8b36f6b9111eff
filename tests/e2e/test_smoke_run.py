"""`make run` as a newcomer uses it: the web server, a real Celery worker and beat.

The run gets a fresh var dir (SQLite, filesystem broker) and a free port, a
browser signs in as the demo admin, a task goes through the filesystem broker
to the worker, and Ctrl-C stops every process cleanly.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from .conftest import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.smoke,
    pytest.mark.e2e,
    # `make run` takes no server URL, so CI's pass on PostgreSQL would run it exactly as its smoke pass does.
    pytest.mark.skipif(
        bool(os.environ.get("CI") and os.environ.get("DATABASE_URL")),
        reason="CI runs make run in its smoke pass on the embedded default",
    ),
]

START_TIMEOUT = 180
STOP_TIMEOUT = 30


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout, what, log_path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}; output of make run:\n{log_path.read_text()[-5000:]}")


class Run:
    """A `make run` process group with its output in a file."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "make-run.log"
        # The embedded default: no server URLs, a var dir of its own.
        self.env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
        self.env["CSP_VAR_DIR"] = str(tmp_path / "var")
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                ["make", "--no-print-directory", "run", f"PORT={self.port}"],
                cwd=settings.BASE_DIR,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self):
        return self.log_path.read_text()

    def ready(self):
        assert self.process.poll() is None, f"make run exited early:\n{self.output()[-5000:]}"
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            # Not answering yet, or too slowly while the worker and beat start beside it.
            return False

    def started_pids(self):
        """The process group of each Procfile entry, as honcho reports them."""
        return [int(pid) for pid in re.findall(r"\| \w+\.1 started \(pid=(\d+)\)", self.output())]

    def interrupt(self):
        """Ctrl-C: a terminal sends SIGINT to the foreground process group."""
        os.killpg(self.process.pid, signal.SIGINT)
        self.process.wait(timeout=STOP_TIMEOUT)

    def kill_leftovers(self):
        """Kill whatever of this run still runs (nothing after a clean stop), so no test leaves servers behind."""
        for pgid in [self.process.pid, *self.started_pids()]:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=STOP_TIMEOUT)


def group_is_gone(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def run(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    run = Run(tmp_path)
    try:
        wait_for(run.ready, START_TIMEOUT, "/readyz to answer 200", run.log_path)
        yield run
    finally:
        run.kill_leftovers()


def test_make_run_serves_the_dashboard_runs_tasks_and_stops_on_ctrl_c(run):
    from playwright.sync_api import sync_playwright

    output = run.output()
    assert f"http://127.0.0.1:{run.port}/" in output
    assert "admin@demo.example" in output

    screenshots = Path(settings.VAR_DIR) / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{run.url}/login/")
            page.fill("input[name=username]", "admin@demo.example")
            page.fill("input[name=password]", os.environ.get("CSP_DEMO_PASSWORD", "demo"))
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{run.url}/t/demo/**")
            table = page.locator("table.accounts")
            table.wait_for()
            assert table.locator("tbody tr").count() > 0
            page.screenshot(path=str(screenshots / "make-run-dashboard.png"), full_page=True)
            # The demo's seeded history reaches an account's activity timeline.
            table.locator("tbody th[scope=row] a").first.click()
            page.wait_for_url("**/accounts/*/")
            page.get_by_role("link", name="Activity timeline").click()
            page.wait_for_url("**/accounts/*/activity/")
            assert page.locator("ol.activity > li").count() > 0
        finally:
            browser.close()

    token, request_id = uuid.uuid4().hex, uuid.uuid4().hex
    # Sent as a request sends its tasks: with the request's id, which the worker's lines for the task carry.
    send = f"from django_guid import set_guid; from csplatform.tasks import ping; set_guid('{request_id}'); "
    send += f"print(ping.delay('{token}').id)"
    sent = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", send],
        cwd=settings.BASE_DIR,
        env=run.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    task_id = sent.stdout.strip().splitlines()[-1]
    wait_for(
        lambda: f"Task csplatform.ping[{task_id}] succeeded" in run.output(),
        60,
        "the worker to run the ping task",
        run.log_path,
    )
    output = run.output()
    assert f"csplatform.tasks [{request_id}] pong {token}" in output
    assert "transport:   filesystem://" in output

    pids = run.started_pids()
    assert len(pids) == 3
    run.interrupt()
    output = run.output()
    assert "SIGINT received" in output
    assert "SIGKILL" not in output
    exits = dict(re.findall(r"\| (\w+)\.1 stopped \(rc=(-?\d+)\)", output))
    assert exits == {"web": "0", "worker": "0", "beat": "0"}
    wait_for(lambda: all(group_is_gone(pid) for pid in pids), 10, "every process to exit", run.log_path)
