"""The benchmark run: build, then measure each figure in an order where none disturbs the next."""

import json
import time
from pathlib import Path

import redis
from django.conf import settings

from csplatform.customers.models import Account, Contact
from csplatform.tenancy.models import Tenant

from . import figures, processes
from .data import Plan, ids_by_external_id, plan_seed, tenant_build
from .database import BenchError, database_prepare, database_problem, database_settle, pending_steps_held_back
from .enrolment_figures import enrolment_figures
from .export_figures import export_figures
from .report import results_write, table_text
from .runner_figures import runner_figures
from .scales import GROWTH_DIVISORS, SCALES

FIGURES = ("ingest", "pipeline", "pages", "export", "freshness", "runner", "enrolment")
MAIN_SLUG = "bench"


def tenants_build(scale, results, log):
    timings = {}
    start = time.perf_counter()
    tenant, plan, account_ids, contact_ids = tenant_build(slug=MAIN_SLUG, scale=scale, timings=timings)
    log(f"built {scale.name}: {scale.accounts} accounts, {scale.contacts} contacts, {scale.events} events "
        f"in {time.perf_counter() - start:.1f}s")
    growth = []
    for divisor in GROWTH_DIVISORS:
        grown, *_ = tenant_build(slug=f"{MAIN_SLUG}-{divisor}", scale=scale.fraction(divisor), timings={})
        growth.append((divisor, grown))
    database_settle()
    results["build"] = figures.figure(
        sum(timings.values()), "s", timings["events_copy"], "s (COPY of the events alone)", "ratio <= 3",
        steps={name: figures.rounded(seconds) for name, seconds in timings.items()},
        events_per_s=figures.rounded(scale.events / timings["events_copy"]),
    )
    return tenant, plan, account_ids, contact_ids, growth


def tenants_reuse(scale):
    """The tenants a previous run built at this scale, or BenchError."""
    if database_problem(settings.DATABASES["default"]):
        raise BenchError(database_problem(settings.DATABASES["default"]))
    tenants = {tenant.slug: tenant for tenant in Tenant.objects.filter(slug__startswith=MAIN_SLUG)}
    tenant = tenants.get(MAIN_SLUG)
    if tenant is None or Account.objects.for_tenant(tenant).count() != scale.accounts:
        raise BenchError(f"No {scale.name} tenant to reuse: run once without --reuse.")
    growth = [(divisor, tenants[f"{MAIN_SLUG}-{divisor}"]) for divisor in GROWTH_DIVISORS]
    plan = Plan(scale, seed=plan_seed(scale))
    return tenant, plan, ids_by_external_id(Account, tenant), ids_by_external_id(Contact, tenant), growth


def flush_redis():
    # Recompute requests queued while no worker ran would otherwise reach the freshness worker first.
    if settings.REDIS_URL:
        redis.Redis.from_url(settings.REDIS_URL).flushdb()


def bench_run(*, scale_name, only=FIGURES, out=None, reuse=False, log=print):
    """1. Prepare the database and build the tenants (timed), or with `reuse` take those a previous run
    built. 2. Ingest through the real server. 3. The pipeline at three sizes (time, memory, growth).
    4. Pages and API. 5. The portfolio's CSV file. 6. Freshness with a real worker and beat. 7. The step
    runner and enrolment. Returns the results, also written to `out` as JSON after each step, so a step
    that fails keeps the figures before it; with `reuse` they update the figures already there."""
    scale = SCALES[scale_name]
    out = Path(out or Path(settings.VAR_DIR) / "bench" / "results.json")
    results = {}
    if reuse:
        tenant, plan, account_ids, contact_ids, growth = tenants_reuse(scale)
        if out.exists():
            results = json.loads(out.read_text())
    else:
        database_prepare()
        tenant, plan, account_ids, contact_ids, growth = tenants_build(scale, results, log)
        results_write(out, results)
    flush_redis()
    ctx = figures.Context(tenant, plan, account_ids, contact_ids)

    if "ingest" in only:
        log("ingest through the batch and Segment APIs under gunicorn ...")
        with processes.gunicorn() as port:
            results.update(figures.ingest_figures(ctx, port, scale))
        results_write(out, results)
    if "pipeline" in only:
        log("pipeline at three sizes ...")
        # The ingest figure updated rollup rows all over the table (its events span 90 days), which clears
        # their pages' all-visible bits until a vacuum; the migrations have autovacuum come early on the
        # rollups, but a server may run without it, and then every index-only read would visit the table.
        database_settle()
        results.update(figures.pipeline_figures(ctx, scale, growth))
        results_write(out, results)
    if "pages" in only:
        log("pages and API ...")
        # The pipeline figures rewrote every account's health rows several times within a minute, which
        # autovacuum clears as soon; measured before, the pages would read the bench's own dead rows.
        figures.dirty_backlog_drain()
        database_settle()
        with processes.gunicorn() as port:
            results.update(figures.page_figures(ctx, port, growth[0][1], log))
        results_write(out, results)
    if "export" in only:
        log("the portfolio's CSV file ...")
        results.update(export_figures(ctx, growth))
        results_write(out, results)
    if "freshness" in only:
        log("freshness with a real worker and beat ...")
        figures.dirty_backlog_drain()
        database_settle()
        flush_redis()
        with pending_steps_held_back(), processes.celery_worker_and_beat(), processes.gunicorn() as port:
            results["freshness"] = figures.freshness_figure(ctx, port)
        results_write(out, results)
    if "runner" in only:
        log("step runner against an SMTP sink ...")
        results.update(runner_figures(scale, log))
        results_write(out, results)
    if "enrolment" in only:
        log("enrolling accounts into a playbook ...")
        results.update(enrolment_figures(ctx))
        results_write(out, results)

    log(table_text(results))
    log(f"scale {scale.name}: {scale.accounts} accounts, {scale.contacts} contacts, {scale.events} events; "
        f"results in {out}")
    return results
