"""One tenant's pass spread over two Celery worker processes: the one that opened it and a helper.

A real prefork worker with two processes listens on a queue of the test's
own; the recompute task sent there asks for one helper (CSP_PIPELINE_HELPERS)
on the same queue, which the worker's other process takes. Chunks of two
accounts make a pass of many chunks out of a few accounts.
"""

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from bench.processes import BIN

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite takes one writer: no helpers there"),
]

ROOT = Path(__file__).resolve().parents[1]
ACCOUNTS = 40

SEED = """
import os
from csplatform import pipeline
from csplatform.customers.models import Account
from csplatform.tenancy.models import Tenant
from health.defaults import scorecards_apply_defaults
from lifecycle.services import stages_apply_template

tenant = Tenant.objects.create(slug="helped", name="Helped")
stages_apply_template(tenant=tenant, template_key="onboarding_to_renewal", actor=None)
scorecards_apply_defaults(tenant=tenant)
count = int(os.environ["HELPED_ACCOUNTS"])
Account.objects.bulk_create(Account(tenant=tenant, external_id=f"a{n}", name=f"Account {n}") for n in range(count))
pipeline.mark_all_dirty(tenant=tenant)
print(tenant.pk)
"""

SEND = """
import os
from csplatform.tasks import recompute_dirty_task

recompute_dirty_task.apply_async(args=[int(os.environ["HELPED_TENANT"])], queue=os.environ["HELPED_QUEUE"])
"""

REPORT = """
import json
from csplatform.customers.models import DirtyAccount
from health.models import HealthScore

print(json.dumps({
    "dirty": DirtyAccount.objects.dangerously_all_tenants().count(),
    "scored": HealthScore.objects.dangerously_all_tenants().count(),
}))
"""

HELPED = re.compile(r"(ForkPoolWorker-\d+).*Helped pipeline pass \d+ of tenant \d+ with (\d+) chunks")
PASS_DONE = re.compile(r"(ForkPoolWorker-\d+).*Task csplatform\.recompute_dirty\[.*succeeded.*'accounts': (\d+)")


def test_a_helper_in_another_worker_process_takes_chunks_of_a_pass_and_every_account_is_recomputed(
    worker_database, tmp_path
):
    env = {
        **os.environ,
        "DATABASE_URL": worker_database,
        "CSP_VAR_DIR": str(tmp_path / "var"),
        "CSP_PIPELINE_CHUNK_SIZE": "2",
        "CSP_PIPELINE_THREADS": "1",
        "CSP_PIPELINE_HELPERS": "1",
        "HELPED_ACCOUNTS": str(ACCOUNTS),
        # A queue of this run's own: on a shared Redis no other worker takes the pass or its helper.
        "HELPED_QUEUE": f"helped-{uuid.uuid4().hex}",
    }

    def shell(script, **extra):
        command = [sys.executable, str(ROOT / "manage.py"), "shell", "-c", script]
        result = subprocess.run(
            command, env={**env, **extra}, cwd=ROOT, check=True, capture_output=True, text=True, timeout=180
        )
        return result.stdout.strip().splitlines()[-1]

    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput"],
        env=env, cwd=ROOT, check=True, capture_output=True, timeout=180,
    )
    tenant_id = shell(SEED)
    log_path = tmp_path / "worker.log"
    worker = [
        str(BIN / "celery"), "-A", "csplatform", "worker", "--pool", "prefork", "--concurrency", "2",
        "--queues", env["HELPED_QUEUE"], "--loglevel", "INFO",
        "--without-mingle", "--without-gossip", "--without-heartbeat",
    ]
    with open(log_path, "w") as log:
        process = subprocess.Popen(worker, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        shell(SEND, HELPED_TENANT=tenant_id)
        deadline = time.monotonic() + 120
        outcome = json.loads(shell(REPORT))
        while (outcome["dirty"], outcome["scored"]) != (0, ACCOUNTS) and time.monotonic() < deadline:
            time.sleep(0.5)
            outcome = json.loads(shell(REPORT))
        while not PASS_DONE.search(log_path.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=30)

    log = log_path.read_text()
    assert outcome == {"dirty": 0, "scored": ACCOUNTS}, log
    coordinator, accounts = PASS_DONE.search(log).groups()
    helpers = [(name, int(chunks)) for name, chunks in HELPED.findall(log)]
    assert int(accounts) == ACCOUNTS
    assert any(name != coordinator and chunks >= 1 for name, chunks in helpers), log
