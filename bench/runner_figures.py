"""The step runner's email rate (issue 8, figure 5), beside a bare smtplib loop sending the same messages.

A tenant of its own gets N accounts, each with a contact and a run of a
one-step playbook whose email is due now. The beat task's own code
(`run_due_task`) executes them in this process against an aiosmtpd sink in
a process of its own, which offers PIPELINING as Postfix and the mail
providers do: once with the default of one email per commit (exactly once),
once more with GROUPED connections sharing a commit (the wider crash window
playbooks/mail.py describes); then a plain smtplib loop sends the same
messages, built beforehand, over one connection to the same sink. Last, the
default again to aiosmtpd's plain sink, which offers no PIPELINING.
"""

import smtplib
import socket
import sys
import time
from contextlib import contextmanager

from django.conf import settings
from django.db import connection
from django.test import override_settings

from csplatform.customers.models import Account, Contact
from csplatform.tenancy.models import Tenant
from playbooks.mail import message_of
from playbooks.models import EmailStatus, OutboundEmail
from playbooks.services import playbook_create, runs_start
from playbooks.tasks import run_due_task

from . import processes
from .database import pending_steps_held_back
from .figures import figure, rounded

RUNNER_SLUG = "bench-runner"
EMAILS = {"tiny": 500, "small": 2_000, "full": 5_000}
# Emails per commit in the second run, one connection each (the wider crash window of playbooks/mail.py).
GROUPED = 4
STEP = {
    "kind": "send_email",
    "config": {"subject": "Your week with {{ account.name }}", "text": "Hi {{ contact.first_name }},\n\nHere it is.",
               "quiet_hours": False},
}


@contextmanager
def smtp_sink(handler="bench.smtp_sink.PipeliningSink"):
    """An aiosmtpd server that accepts and discards every message, in a process of its own; yields its port."""
    port = processes.free_port()
    args = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c", handler]

    def listening():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    with processes.running(args, log_name="smtp-sink", ready=listening):
        yield port


def emails_due(count):
    """A fresh tenant whose `count` emails are due now; returns it."""
    Tenant.objects.filter(slug=RUNNER_SLUG).delete()
    tenant = Tenant.objects.create(slug=RUNNER_SLUG, name="Runner bench")
    accounts = Account.objects.bulk_create(
        Account(tenant=tenant, external_id=f"r{n}", name=f"Runner {n}") for n in range(count)
    )
    Contact.objects.bulk_create(
        Contact(tenant=tenant, account=account, external_id=f"rc{n}", name=f"Pat {n}",
                email=f"pat{n}@customer.example", role="administrator")
        for n, account in enumerate(accounts)
    )
    playbook = playbook_create(
        tenant=tenant, actor=None, key="weekly", name="Weekly", trigger_type="manual", steps=[STEP], enabled=True
    )
    runs_start(tenant=tenant, playbook=playbook, account_ids=[account.pk for account in accounts])
    return tenant


def bare_loop(port, emails):
    """Send the messages with smtplib alone, over one connection; returns the seconds taken."""
    envelopes = [
        (message.from_email, message.recipients(), message.message().as_bytes(linesep="\r\n"))
        for message in map(message_of, emails)
    ]
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for sender, recipients, data in envelopes:
            smtp.sendmail(sender, recipients, data)
    return time.perf_counter() - start


def round_trip_seconds(samples=200):
    """The database's answer time to `SELECT 1` right now: what each of the runner's statements costs at least."""
    with connection.cursor() as cursor:
        start = time.perf_counter()
        for _ in range(samples):
            cursor.execute("SELECT 1")
            cursor.fetchone()
    return (time.perf_counter() - start) / samples


def runner_run(count, log):
    """Run the beat task's code over `count` emails due; returns (seconds, statements, the sent emails)."""
    statements = 0

    def counted(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    with pending_steps_held_back():
        tenant = emails_due(count)
        log(f"step runner: {count} emails due, CSP_SMTP_CONNECTIONS={settings.CSP_SMTP_CONNECTIONS} ...")
        start = time.perf_counter()
        with connection.execute_wrapper(counted):
            executed = run_due_task()
        seconds = time.perf_counter() - start
    sent = list(OutboundEmail.objects.for_tenant(tenant).filter(status=EmailStatus.SENT).order_by("pk"))
    if executed != count or len(sent) != count:
        raise RuntimeError(f"The runner executed {executed} steps and sent {len(sent)} of {count} emails.")
    return seconds, statements, sent


@contextmanager
def smtp_settings(port):
    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1", EMAIL_PORT=port,
        EMAIL_USE_TLS=False, EMAIL_USE_SSL=False,
    ):
        yield


def runner_figures(scale, log):
    """The default (one email per commit, exactly once) to a sink offering PIPELINING; beside it GROUPED
    connections per commit (mail.py's trade), and the default to a sink without PIPELINING."""
    count = EMAILS.get(scale.name, EMAILS["small"])
    with smtp_sink() as port, smtp_settings(port):
        round_trip = round_trip_seconds()
        with override_settings(CSP_SMTP_CONNECTIONS=1):
            runner_seconds, statements, sent = runner_run(count, log)
        with override_settings(CSP_SMTP_CONNECTIONS=GROUPED):
            grouped_seconds, _, _ = runner_run(count, log)
        bare_seconds = bare_loop(port, sent)
    with smtp_sink("aiosmtpd.handlers.Sink") as port, smtp_settings(port), override_settings(CSP_SMTP_CONNECTIONS=1):
        unpipelined_seconds, _, _ = runner_run(count, log)
    runner_rate, bare_rate = count / runner_seconds, count / bare_seconds
    return {
        "runner": figure(
            runner_rate, "emails/s", bare_rate, "emails/s (bare smtplib loop, one connection)",
            ">= 500 emails/s per process", emails=count, runner_seconds=rounded(runner_seconds),
            bare_seconds=rounded(bare_seconds), statements_per_email=rounded(statements / count),
            db_round_trip_ms=rounded(round_trip * 1000),
            **{f"emails_per_s_with_{GROUPED}_connections": rounded(count / grouped_seconds)},
            emails_per_s_without_pipelining=rounded(count / unpipelined_seconds),
        )
    }
