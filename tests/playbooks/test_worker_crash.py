"""Celery workers SIGKILLed again and again while 1,000 playbook emails are due;
every email reaches a real SMTP server exactly once.

Two Celery workers (`celery -A csplatform worker`, the project's settings and
broker: Redis when REDIS_URL is set, else the filesystem transport) share the
due steps. A ticker sends them the step runner's beat task every second, as
beat does every minute. The SMTP server kills the worker on the line with
SIGKILL at fixed points, every couple of hundred messages, and a new worker
takes its place at once; the task the dead worker held is lost with it, and
the next tick carries on. The points alternate between the two moments that
decide the outcome (see playbooks/mail.py):

- at RCPT, before the message content: the row is still queued and the
  server never gets the message; the step is reclaimed once its claim is
  stale (2 s here) and the email is sent then;
- after the final "." of DATA, while the worker waits for the server's
  answer: the server already has the message, as a real MTA that has
  queued it before answering; the row was marked sent just before the "."
  was written, so the restarted workers do not send it again. (Sending
  first and marking after the answer would duplicate this email.)

What no test can reach is the one window left open: a kill after the sent
mark's commit reaches the database and before the "." reaches the kernel,
well under a millisecond. The server then discards the unfinished message while its
row says sent: that email is lost, not duplicated. The workers run one task
at a time with the default of one SMTP connection; grouped connections
(CSP_SMTP_CONNECTIONS) widen that window, as playbooks/mail.py explains.
"""

import asyncio
import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from bench.processes import BIN, free_port
from tests.conftest import Inbox
from tests.security.conftest import record_figure

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EMAILS = 1_000
# Message numbers (as the server counts them) at which the sending worker dies, and where.
KILLS = {150: "rcpt", 350: "data", 550: "rcpt", 750: "data", 900: "rcpt"}

SEED = """
import os
from csplatform.customers.models import Account, Contact
from csplatform.tenancy.models import Tenant
from playbooks.services import playbook_create, runs_start

tenant = Tenant.objects.create(slug="crash", name="Crash test")
count = int(os.environ["CRASH_EMAILS"])
accounts = Account.objects.bulk_create(
    Account(tenant=tenant, external_id=f"a{n}", name=f"Account {n}") for n in range(count)
)
Contact.objects.bulk_create(
    Contact(tenant=tenant, account=account, external_id=f"c{n}", name="Pat",
            email=f"pat{n}@customer.example", role="administrator")
    for n, account in enumerate(accounts)
)
steps = [{"kind": "send_email", "config": {"subject": "Hello {{ account.name }}", "text": "Hi", "quiet_hours": False}}]
playbook = playbook_create(
    tenant=tenant, actor=None, key="crash", name="Crash", trigger_type="manual", steps=steps, enabled=True
)
runs_start(tenant=tenant, playbook=playbook, account_ids=[a.pk for a in accounts])
"""

# Beat's playbook-steps entry, every second instead of every minute; a tick no worker took in time
# expires, as beat's do, so ticks never pile up behind a busy worker.
TICKER = """
import os
import time
from playbooks.tasks import run_due_task

while True:
    run_due_task.apply_async(queue=os.environ["CRASH_QUEUE"], expires=2)
    time.sleep(1)
"""

REPORT = """
import json
from playbooks.models import OutboundEmail, Run

def statuses(model):
    return sorted(model.objects.dangerously_all_tenants().order_by().values_list("status", flat=True).distinct())

print(json.dumps({
    "emails": statuses(OutboundEmail),
    "runs": statuses(Run),
    "sent": OutboundEmail.objects.dangerously_all_tenants().filter(status="sent").count(),
}))
"""


class Workers:
    """The worker processes, by name; the one sending a message is named in its sender address."""

    def __init__(self, start):
        self.start = start
        self.lock = threading.Lock()
        self.running = {name: start(name) for name in ("w0", "w1")}
        self.killed = []

    def kill_and_replace(self, name):
        with self.lock:
            process = self.running.pop(name)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            self.killed.append(process)
            replacement = f"w{len(self.running) + len(self.killed)}"
            self.running[replacement] = self.start(replacement)

    def stop(self):
        with self.lock:
            for process in self.running.values():
                process.terminate()
            for process in self.running.values():
                process.wait(10)


class KillingInbox(Inbox):
    """An SMTP server that counts messages and kills the sending worker at the KILLS points.

    It offers PIPELINING, as the mail servers the workers meet in production do.
    """

    def __init__(self):
        super().__init__(pipelining=True)
        self.message_ids = []
        self.started = 0
        self.workers = None

    def _worker_of(self, envelope):
        return envelope.mail_from.split("@")[0]

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            self.started += 1
            # Decided once per message, here: with two workers sending, the count moves on before DATA.
            envelope.kill_at = KILLS.get(self.started)
        envelope.rcpt_tos.append(address)
        if envelope.kill_at == "rcpt":
            # The message content never arrives: the row stays queued.
            self.workers.kill_and_replace(self._worker_of(envelope))
            await asyncio.sleep(0.1)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.lock:
            # Kept before answering, as a real MTA queues a message before its 250.
            self.message_ids.append(str(message["Message-ID"]))
        if getattr(envelope, "kill_at", None) == "data":
            self.workers.kill_and_replace(self._worker_of(envelope))
            await asyncio.sleep(0.1)
        return "250 OK"

    def count(self):
        with self.lock:
            return len(self.message_ids)


def test_celery_workers_sigkilled_repeatedly_deliver_each_of_1000_emails_exactly_once(worker_database, tmp_path):
    inbox = KillingInbox()
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
        "CRASH_EMAILS": str(EMAILS),
        # A queue of this run's own: on a shared Redis no other worker takes its ticks.
        "CRASH_QUEUE": f"crash-{uuid.uuid4().hex}",
    }

    def manage(*args):
        return [sys.executable, str(ROOT / "manage.py"), *args]

    def run(*args):
        return subprocess.run(manage(*args), env=env, cwd=ROOT, check=True, capture_output=True, text=True, timeout=180)

    def start(command, name, **extra):
        with open(tmp_path / f"{name}.log", "a") as log:
            return subprocess.Popen(command, env={**env, **extra}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def worker(name):
        command = [
            str(BIN / "celery"), "-A", "csplatform", "worker", "--pool", "threads", "--concurrency", "1",
            "--queues", env["CRASH_QUEUE"], "--hostname", f"{name}@crash", "--loglevel", "WARNING",
            "--without-mingle", "--without-gossip", "--without-heartbeat",
        ]
        return start(command, name, DEFAULT_FROM_EMAIL=f"{name}@workers.example")

    def report():
        return json.loads(run("shell", "-c", REPORT).stdout.strip().splitlines()[-1])

    workers = ticker = None
    try:
        run("migrate", "--noinput")
        run("shell", "-c", SEED)
        inbox.workers = workers = Workers(worker)
        ticker = start(manage("shell", "-c", TICKER), "ticker")
        # About a minute alone; room for a Celery start after each kill on a busy machine.
        deadline = time.monotonic() + 180
        while inbox.count() < EMAILS and time.monotonic() < deadline:
            time.sleep(0.2)
        # Steps killed after their email was sent come back once stale; let them all settle.
        outcome = report()
        while outcome["runs"] != ["completed"] and time.monotonic() < deadline:
            time.sleep(0.5)
            outcome = report()
    finally:
        if ticker is not None:
            ticker.terminate()
            ticker.wait(10)
        if workers is not None:
            workers.stop()
        controller.stop()

    kills = len(workers.killed)
    record_figure("worker crash: Celery worker SIGKILLs survived", kills)
    record_figure("worker crash: emails delivered", inbox.count())
    record_figure("worker crash: distinct Message-IDs", len(set(inbox.message_ids)))
    record_figure("worker crash: emails in the send ledger", outcome["sent"])
    assert kills == len(KILLS)
    assert all(process.returncode == -signal.SIGKILL for process in workers.killed)
    assert inbox.count() == outcome["sent"] == EMAILS
    assert len(set(inbox.message_ids)) == EMAILS
    assert outcome == {"emails": ["sent"], "runs": ["completed"], "sent": EMAILS}
