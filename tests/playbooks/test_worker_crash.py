"""Two worker processes race over the due steps; one is killed with SIGKILL in
the middle of sending an email, a new one is started, and every email reaches
the real SMTP server exactly once."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg2
import pytest
from aiosmtpd.controller import Controller
from django.db import connection

from tests.playbooks.conftest import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = 24
BLOCK_AT = 6

SEED = """
import os
from csplatform.customers.models import Account, Contact
from csplatform.tenancy.models import Tenant
from playbooks.services import playbook_create, runs_start

tenant = Tenant.objects.create(slug="crash", name="Crash test")
accounts = [
    Account.objects.create(tenant=tenant, external_id=f"a{n}", name=f"Account {n}")
    for n in range(int(os.environ["CRASH_ACCOUNTS"]))
]
for account in accounts:
    Contact.objects.create(
        tenant=tenant, account=account, external_id=f"c{account.pk}", name="Pat",
        email=f"pat{account.pk}@customer.example", role="administrator",
    )
steps = [
    {"kind": "send_email", "config": {"subject": "Hello {{ account.name }}", "text": "Hi", "quiet_hours": False}},
    {"kind": "create_task", "config": {"title": "Follow up {{ account.name }}"}},
]
playbook = playbook_create(
    tenant=tenant, actor=None, key="crash", name="Crash", trigger_type="manual", steps=steps, enabled=True
)
runs_start(tenant=tenant, playbook=playbook, account_ids=[a.pk for a in accounts])
"""

REPORT = """
import json
from playbooks.models import OutboundEmail, Run, Task

def statuses(model):
    return sorted(model.objects.dangerously_all_tenants().order_by().values_list("status", flat=True).distinct())

print(json.dumps({
    "emails": statuses(OutboundEmail),
    "runs": statuses(Run),
    "tasks": Task.objects.dangerously_all_tenants().count(),
}))
"""


class GatedInbox:
    """Accepts mail, but holds the BLOCK_AT-th message unanswered until released."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()
        self.seen = 0
        self.blocked_sender = None
        self.blocked = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.seen += 1
            gate = self.seen == BLOCK_AT
        if gate:
            self.blocked_sender = envelope.mail_from
            self.blocked.set()
            # The worker dies while waiting for our answer; aiosmtpd then cancels this coroutine,
            # so the message is never accepted, as with any SMTP server.
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        with self.lock:
            self.messages.append(envelope.rcpt_tos[0])
        return "250 OK"


@pytest.fixture
def worker_database(tmp_path, django_db_blocker):
    """A database of its own that separate processes share: a SQLite file or a PostgreSQL database."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        yield f"sqlite:///{tmp_path / 'workers.sqlite3'}"
        return
    name = f"{settings['NAME']}_workers"[:63]
    params = {
        "host": settings["HOST"] or "127.0.0.1",
        "port": settings["PORT"] or 5432,
        "user": settings["USER"],
        "password": settings["PASSWORD"] or None,
        "dbname": "postgres",
    }
    admin = psycopg2.connect(**params)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    yield f"postgres://{settings['USER']}{password}@{params['host']}:{params['port']}/{name}"
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_sigkilled_worker_mid_send_loses_and_duplicates_no_email(worker_database, tmp_path):
    inbox = GatedInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    env = {
        **os.environ,
        "DATABASE_URL": worker_database,
        "CSP_VAR_DIR": str(tmp_path / "var"),
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(controller.port),
        "CSP_PLAYBOOK_STALE_SECONDS": "2",
        "LOG_LEVEL": "WARNING",
        "CRASH_ACCOUNTS": str(ACCOUNTS),
    }

    def manage(*args):
        return [sys.executable, str(ROOT / "manage.py"), *args]

    def run(*args):
        return subprocess.run(manage(*args), env=env, cwd=ROOT, check=True, capture_output=True, text=True, timeout=180)

    def worker(name):
        worker_env = {**env, "DEFAULT_FROM_EMAIL": f"{name}@workers.example"}
        command = manage("playbooks_run_steps", "--loop", "--limit", "4", "--interval", "0.2")
        return subprocess.Popen(command, env=worker_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    workers = {}
    try:
        run("migrate", "--noinput")
        run("shell", "-c", SEED)
        workers = {name: worker(name) for name in ("first", "second")}
        assert inbox.blocked.wait(60), "no worker reached the gated message"
        victim = inbox.blocked_sender.split("@")[0]
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait(10)
        time.sleep(0.3)
        inbox.release.set()
        workers["restarted"] = worker("restarted")

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with inbox.lock:
                if len(inbox.messages) >= ACCOUNTS:
                    break
            time.sleep(0.2)
        # Time for any duplicate to show up before counting.
        time.sleep(3)
        report = json.loads(run("shell", "-c", REPORT).stdout.strip().splitlines()[-1])
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.terminate()
                process.wait(10)
        controller.stop()

    assert workers[victim].returncode == -signal.SIGKILL
    with inbox.lock:
        assert len(inbox.messages) == ACCOUNTS
        assert len(set(inbox.messages)) == ACCOUNTS
    assert report == {"emails": ["sent"], "runs": ["completed"], "tasks": ACCOUNTS}
