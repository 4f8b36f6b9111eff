"""Enrolment at scale: one playbook starting for ten thousand accounts at once, as the pipeline asks for it.

Everything here is rolled back, so the tenant's data stays as built.
"""

import datetime as dt
import time

from django.db import connection, transaction
from django.utils import timezone

from csplatform.tenancy.timezones import tenant_zone
from lifecycle.models import AccountStage, Stage
from playbooks.library import onboarding_welcome
from playbooks.models import Playbook, Run, StepRun
from playbooks.services import playbook_create, playbook_steps, playbooks_enroll

from .database import table
from .figures import figure, run_stamp

# Issue 8: enrolling 10k accounts into a playbook takes at most 10 s.
ENROL_ACCOUNTS = 10_000


def enrolment_figures(ctx):
    """Seconds for `playbooks_enroll` to start a stage_entered playbook for up to ENROL_ACCOUNTS accounts.

    1. Place the accounts in the trigger stage and create the playbook, the
       tenant's only enabled one, so the time is this playbook's alone.
    2. Time `playbooks_enroll` with every account as a stage change, as the
       pipeline calls it; then undo it.
    3. Time the baseline: one raw INSERT ... SELECT of as many runs and their
       first step runs.
    Both clocks stop after the deferred foreign-key checks, as a commit would run them.
    """
    tenant = ctx.tenant
    account_ids = ctx.account_ids[:ENROL_ACCOUNTS]
    now = timezone.now()
    with transaction.atomic():
        stage = Stage.objects.for_tenant(tenant).order_by("position").first()
        accounts_place(tenant, account_ids, stage, now)
        Playbook.objects.for_tenant(tenant).filter(enabled=True).update(enabled=False)
        spec = {**onboarding_welcome(), "key": f"bench-enrolment-{run_stamp()}", "trigger_config": {"stage": stage.key}}
        playbook = playbook_create(tenant=tenant, actor=None, enabled=True, **spec)

        with transaction.atomic():
            start = time.perf_counter()
            started = playbooks_enroll(tenant=tenant, account_ids=account_ids, stage_changes=account_ids, now=now)
            deferred_checks_run()
            seconds = time.perf_counter() - start
            runs = Run.objects.for_tenant(tenant).filter(playbook=playbook).count()
            step_runs = StepRun.objects.for_tenant(tenant).filter(run__playbook=playbook).count()
            transaction.set_rollback(True)

        start = time.perf_counter()
        runs_insert_select(tenant, playbook, account_ids, now)
        deferred_checks_run()
        baseline = time.perf_counter() - start
        transaction.set_rollback(True)

    return {
        "playbook_enrolment": figure(
            seconds, "s", baseline, "s (INSERT ... SELECT of the same runs and first steps)",
            f"<= 10 s for {ENROL_ACCOUNTS:,} accounts", accounts=len(account_ids),
            started=started.get(playbook.pk, 0), runs=runs, step_runs=step_runs,
        )
    }


def accounts_place(tenant, account_ids, stage, now):
    day = now.astimezone(tenant_zone(tenant)).date().toordinal()
    placements = [
        AccountStage(tenant=tenant, account_id=pk, stage=stage, entered_at=now, entered_day=day) for pk in account_ids
    ]
    AccountStage.objects.bulk_create(
        placements, update_conflicts=True, unique_fields=["account"],
        update_fields=["stage", "entered_at", "entered_day"],
    )


def runs_insert_select(tenant, playbook, account_ids, now):
    first = playbook_steps(tenant, playbook)[0]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH runs AS (
                INSERT INTO {table(Run)}
                    (tenant_id, playbook_id, account_id, status, trigger_stage_key, started_at, reason)
                SELECT %s, %s, id, 'active', %s, %s, '' FROM unnest(%s::bigint[]) AS id
                RETURNING id
            )
            INSERT INTO {table(StepRun)}
                (tenant_id, run_id, step_id, sequence, due_at, status, attempts, outcome, error)
            SELECT %s, id, %s, 0, %s, 'pending', 0, '{{}}', '' FROM runs
            """,
            [tenant.pk, playbook.pk, playbook.trigger_config["stage"], now, list(account_ids),
             tenant.pk, first.pk, now + dt.timedelta(minutes=first.delay_minutes)],
        )


def deferred_checks_run():
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
