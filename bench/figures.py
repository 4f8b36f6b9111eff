"""Each figure beside its baseline, measured in the same run on the same data.

A figure is a dict {value, unit, baseline, baseline_unit, ratio, target}
plus details; `ratio` is value / baseline, so its meaning (higher or lower
is better) is stated in `target`.
"""

import base64
import datetime as dt
import io
import json
import statistics
import subprocess
import sys
import time

from django.db import connection, transaction
from django.db.models import Sum
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from csplatform import pipeline
from csplatform.customers.models import Account, DailyRollup, UsageEvent
from csplatform.tenancy.services import api_key_create, membership_set, user_get_or_create
from health.models import HealthScore

from . import processes
from .data import EVENT_COLUMNS, event_lines, table

REQUEST_EVENTS = 500
INGEST_CLIENTS = 4
PAGE_CLIENTS = 4
PAGE_REQUESTS = 60
RAW_SQL_RUNS = 30
# The per-account loop is slow by nature; a sample this size extrapolates well and keeps a run short.
NAIVE_SAMPLE = 500
# Candidate route names of pages other apps may provide; a missing one is reported, not failed.
PAGE_ROUTES = {
    "portfolio": ("portfolio", {}),
    "board": ("board", {}),
    "account_page": ("account-detail", {"account_id": None}),
}


def run_stamp():
    # Message ids of this run's events: new ones even on tenants an earlier run already sent events to.
    return timezone.now().strftime("%Y%m%d%H%M%S")


def figure(value, unit, baseline, baseline_unit, target, **details):
    ratio = value / baseline if value is not None and baseline else None
    return {
        "value": rounded(value), "unit": unit, "baseline": rounded(baseline), "baseline_unit": baseline_unit,
        "ratio": rounded(ratio), "target": target, **details,
    }


def rounded(number):
    # Four significant digits: more would be noise on a shared machine.
    return None if number is None else float(f"{number:.4g}")


class Context:
    """What the figures share: the tenant, its generation plan and credentials for the real server."""

    def __init__(self, tenant, plan, account_ids, contact_ids):
        self.tenant, self.plan = tenant, plan
        self.account_ids, self.contact_ids = account_ids, contact_ids
        _, self.key = api_key_create(tenant=tenant, name="bench", scopes=["read", "write", "ingest"])
        self.user = user_get_or_create(email="bench@bench.example", name="Bench", password="bench-password")
        membership_set(tenant=tenant, user=self.user, role="admin")
        client = Client()
        client.force_login(self.user)
        self.session_cookie = f"sessionid={client.cookies['sessionid'].value}"


# 1. Ingest --------------------------------------------------------------------------------------------


def api_bodies(events):
    for start in range(0, len(events), REQUEST_EVENTS):
        items = []
        chunk = events[start : start + REQUEST_EVENTS]
        for message_id, account_index, contact_index, name, timestamp, properties in chunk:
            item = {"message_id": message_id, "account": f"acc-{account_index:07d}", "event": name,
                    "timestamp": timestamp, "properties": properties}
            if contact_index is not None:
                item["contact"] = f"con-{contact_index:08d}"
            items.append(item)
        yield json.dumps({"events": items}).encode()


def segment_bodies(events):
    for start in range(0, len(events), REQUEST_EVENTS):
        batch = []
        chunk = events[start : start + REQUEST_EVENTS]
        for message_id, account_index, contact_index, name, timestamp, properties in chunk:
            message = {"type": "track", "messageId": message_id, "event": name, "timestamp": timestamp,
                       "properties": properties, "context": {"groupId": f"acc-{account_index:07d}"}}
            if contact_index is not None:
                message["userId"] = f"con-{contact_index:08d}"
            else:
                message["anonymousId"] = message_id
            batch.append(message)
        yield json.dumps({"batch": batch}).encode()


def copy_rate(ctx, events):
    """Rows per second of a text COPY of the same rows into the same table; rolled back so the data stays as built."""
    lines = list(event_lines(ctx.tenant.pk, events, ctx.account_ids, ctx.contact_ids, timezone.now()))
    buffer = io.StringIO("".join(lines))
    start = time.perf_counter()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.cursor.copy_expert(f"COPY {table(UsageEvent)} ({', '.join(EVENT_COLUMNS)}) FROM STDIN", buffer)
        seconds = time.perf_counter() - start
        transaction.set_rollback(True)
    return len(events) / seconds


def ingest_figures(ctx, port, scale):
    stamp = run_stamp()
    write_key = base64.b64encode(f"{ctx.key}:".encode()).decode()
    runs = {
        "ingest_batch_api": (f"api{stamp}-", api_bodies, "/api/v1/events/batch", f"Bearer {ctx.key}"),
        "ingest_segment_api": (f"seg{stamp}-", segment_bodies, "/api/segment/v1/batch", f"Basic {write_key}"),
    }
    events = {name: list(ctx.plan.events(scale.api_events, prefix)) for name, (prefix, *_) in runs.items()}
    # The baseline goes first and is rolled back, so the API then stores these very rows.
    baseline = copy_rate(ctx, events["ingest_batch_api"])
    results = {}
    for name, (prefix, bodies, path, authorization) in runs.items():
        headers = {"Content-Type": "application/json", "Authorization": authorization}
        requests = [("POST", path, body, headers) for body in bodies(events[name])]
        latencies, wall, statuses = processes.drive(port, requests, INGEST_CLIENTS)
        stored = UsageEvent.objects.for_tenant(ctx.tenant).filter(message_id__startswith=prefix).count()
        results[name] = figure(
            stored / wall, "events/s", baseline, "events/s (COPY of the same rows)", "ratio >= 0.1",
            events=len(events[name]), stored=stored, requests=len(requests), clients=INGEST_CLIENTS,
            events_per_request=REQUEST_EVENTS, statuses=statuses,
            p50_ms=rounded(1000 * processes.percentile(latencies, 50)),
            p99_ms=rounded(1000 * processes.percentile(latencies, 99)),
        )
    return results


# 2, 5, 6. Pipeline, memory, growth ---------------------------------------------------------------------


def pipeline_run(slug):
    """The full pipeline over every account of a tenant, in a child process.

    Returns the steady-state pass {seconds, accounts, moved} with the first
    pass under "first_pass", and the process's idle and peak RSS.
    """
    output = subprocess.run(
        [sys.executable, "-m", "bench.child", slug], check=True, capture_output=True, text=True,
        env=processes.child_env(),
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def floor_seconds(tenant):
    """One INSERT ... SELECT ... GROUP BY account over the rollups into a scratch table: reading the data once."""
    today = dt.date.today()
    windows = {days: today - dt.timedelta(days=days - 1) for days in (7, 30, 90)}
    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_floor (account_id bigint, events_7d bigint, events_30d bigint, "
            "events_90d bigint, contacts_7d bigint, contacts_30d bigint, last_day date) ON COMMIT DROP"
        )
        cursor.execute(
            f"""
            INSERT INTO bench_floor
            SELECT account_id,
                   sum(count) FILTER (WHERE day >= %(d7)s), sum(count) FILTER (WHERE day >= %(d30)s),
                   sum(count) FILTER (WHERE day >= %(d90)s),
                   count(DISTINCT contact_ref) FILTER (WHERE day >= %(d7)s AND contact_ref <> 0),
                   count(DISTINCT contact_ref) FILTER (WHERE day >= %(d30)s AND contact_ref <> 0),
                   max(day)
            FROM {table(DailyRollup)} WHERE tenant_id = %(tenant)s GROUP BY account_id
            """,
            {"d7": windows[7], "d30": windows[30], "d90": windows[90], "tenant": tenant.pk},
        )
    return time.perf_counter() - start


def naive_seconds_per_account(tenant, sample):
    """The pipeline called one account at a time, as a per-account ORM loop would run it."""
    ids = list(Account.objects.for_tenant(tenant).order_by("pk").values_list("pk", flat=True)[:sample])
    start = time.perf_counter()
    for account_id in ids:
        pipeline.recompute_accounts(tenant=tenant, account_ids=[account_id])
    return (time.perf_counter() - start) / len(ids), len(ids)


def pipeline_figures(ctx, scale, growth_tenants):
    """growth_tenants: [(divisor, tenant)] built at fractions of the scale, besides the main tenant."""
    runs = {divisor: pipeline_run(tenant.slug) for divisor, tenant in growth_tenants}
    runs[1] = pipeline_run(ctx.tenant.slug)
    main = runs[1]
    floor = floor_seconds(ctx.tenant)
    per_account, sampled = naive_seconds_per_account(ctx.tenant, min(NAIVE_SAMPLE, max(1, scale.accounts // 10)))
    naive = per_account * scale.accounts
    smallest = max(runs)
    results = {
        "pipeline_all_accounts": figure(
            main["seconds"], "s", floor, "s (one INSERT ... SELECT ... GROUP BY over the rollups)", "ratio <= 3",
            accounts=main["accounts"], accounts_per_s=rounded(main["accounts"] / main["seconds"]),
            moved=main["moved"], first_pass_s=rounded(main["first_pass"]["seconds"]),
            first_pass_moved=main["first_pass"]["moved"],
        ),
        "pipeline_vs_naive_loop": figure(
            main["seconds"], "s", naive, f"s (per-account loop over {sampled} accounts, extrapolated)",
            "ratio <= 0.2", naive_ms_per_account=rounded(1000 * per_account),
        ),
        "pipeline_peak_rss": figure(
            main["peak_kb"] / 1024, "MB", runs[smallest]["peak_kb"] / 1024,
            f"MB (same pipeline at 1/{smallest} of the accounts)", "ratio <= 1.5 (memory bounded by the chunk)",
            idle_mb=rounded(main["idle_kb"] / 1024),
        ),
        "pipeline_growth": figure(
            main["seconds"], "s", runs[smallest]["seconds"] * smallest,
            f"s (1/{smallest} of the accounts, times {smallest}: linear growth)", "ratio <= 1.2",
            points={f"1/{divisor}": rounded(run["seconds"]) for divisor, run in sorted(runs.items(), reverse=True)},
        ),
    }
    return results


# 4. Pages and API --------------------------------------------------------------------------------------


def page_paths(tenant, account_id):
    """{figure name: path}, None for a page this checkout does not have."""
    paths = {}
    for name, (route, kwargs) in PAGE_ROUTES.items():
        kwargs = {key: account_id if value is None else value for key, value in kwargs.items()}
        try:
            paths[name] = reverse(route, kwargs={"tenant_slug": tenant.slug, **kwargs})
        except NoReverseMatch:
            paths[name] = None
    paths["accounts_api"] = "/api/v1/accounts/"
    return paths


def busiest_account(tenant):
    return (
        DailyRollup.objects.for_tenant(tenant).values("account_id").order_by().annotate(n=Sum("count"))
        .order_by("-n", "account_id").values_list("account_id", flat=True).first()
    )


def captured(path, client, headers):
    """The page's queries when served in-process: (count, slowest SQL).

    A first request is left out, so that once-per-interval writes (an API
    key's last-used time) do not count at one scale and not the other.
    """
    client.get(path, **headers)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, **headers)
    assert response.status_code == 200, f"{path} answered {response.status_code}"
    slowest = max(queries.captured_queries, key=lambda query: float(query["time"]))
    return len(queries.captured_queries), slowest["sql"]


def raw_sql_p95(sql):
    timings = []
    with connection.cursor() as cursor:
        for _ in range(RAW_SQL_RUNS):
            start = time.perf_counter()
            cursor.execute(sql)
            cursor.fetchall()
            timings.append(time.perf_counter() - start)
    return processes.percentile(timings, 95)


def page_figures(ctx, port, small_tenant, log):
    account_id = busiest_account(ctx.tenant)
    paths = page_paths(ctx.tenant, account_id)
    _, small_key = api_key_create(tenant=small_tenant, name="bench", scopes=["read"])
    membership_set(tenant=small_tenant, user=ctx.user, role="admin")
    small_paths = page_paths(small_tenant, busiest_account(small_tenant))
    client = Client()
    client.force_login(ctx.user)
    results = {}
    for name, path in paths.items():
        if path is None:
            log(f"no {name} page in this checkout (route {PAGE_ROUTES[name][0]!r}); not measured")
            continue
        is_api = name == "accounts_api"
        count, slowest = captured(path, client, {"HTTP_AUTHORIZATION": f"Bearer {ctx.key}"} if is_api else {})
        small_count, _ = captured(
            small_paths[name], client, {"HTTP_AUTHORIZATION": f"Bearer {small_key}"} if is_api else {}
        )
        headers = {"Authorization": f"Bearer {ctx.key}"} if is_api else {"Cookie": ctx.session_cookie}
        latencies, _, statuses = processes.drive(port, [("GET", path, None, headers)] * PAGE_REQUESTS, PAGE_CLIENTS)
        p95 = processes.percentile(latencies, 95)
        results[f"page_{name}"] = figure(
            1000 * p95, "ms p95", 1000 * raw_sql_p95(slowest), "ms p95 (its slowest query as raw SQL)",
            "ratio <= 5; same query count at both scales",
            p99_ms=rounded(1000 * processes.percentile(latencies, 99)), clients=PAGE_CLIENTS,
            requests=PAGE_REQUESTS, statuses=statuses, queries=count, queries_at_smaller_scale=small_count,
        )
    return results


# 3. Freshness ------------------------------------------------------------------------------------------

FRESHNESS_REQUESTS = 15
FRESHNESS_INTERVAL = 1.0
FRESHNESS_ACCOUNTS_PER_REQUEST = 5
FRESHNESS_WAIT = 120


def freshness_figure(ctx, port):
    """Ingest at a modest rate with a real worker and beat; time until each account's new health is visible.

    Each request carries one event for each of a few accounts; an account is
    fresh once its HealthScore was computed after the request was answered.
    """
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {ctx.key}"}
    sample = ctx.plan.rng.sample(range(len(ctx.account_ids)), FRESHNESS_REQUESTS * FRESHNESS_ACCOUNTS_PER_REQUEST)
    pending = {}
    delays = []
    stamp = run_stamp()
    for number in range(FRESHNESS_REQUESTS):
        indexes = sample[number * FRESHNESS_ACCOUNTS_PER_REQUEST : (number + 1) * FRESHNESS_ACCOUNTS_PER_REQUEST]
        now = timezone.now()
        events = [{"message_id": f"fresh{stamp}-{number}-{index}", "account": f"acc-{index:07d}", "event": "login",
                   "timestamp": now.isoformat()} for index in indexes]
        latencies, _, statuses = processes.drive(
            port, [("POST", "/api/v1/events/batch", json.dumps({"events": events}).encode(), headers)], 1
        )
        answered = timezone.now()
        for index in indexes:
            pending[ctx.account_ids[index]] = answered
        poll_fresh(ctx.tenant, pending, delays)
        time.sleep(FRESHNESS_INTERVAL)
    deadline = time.monotonic() + FRESHNESS_WAIT
    while pending and time.monotonic() < deadline:
        poll_fresh(ctx.tenant, pending, delays)
        time.sleep(0.1)
    p95 = processes.percentile(delays, 95) if not pending else None
    work = recompute_seconds(ctx)
    return figure(
        p95, "s p95", work, f"s (recompute of {FRESHNESS_ACCOUNTS_PER_REQUEST} accounts in-process)",
        "p95 <= 10 s", p50_s=rounded(processes.percentile(delays, 50)), accounts=len(delays),
        never_fresh=len(pending),
    )


def poll_fresh(tenant, pending, delays):
    # Poll times are taken on this machine's clock, as computed_at is by the worker on the same machine.
    rows = HealthScore.objects.for_tenant(tenant).filter(account_id__in=list(pending)).values_list(
        "account_id", "computed_at"
    )
    seen = timezone.now()
    for account_id, computed_at in rows:
        if computed_at >= pending[account_id]:
            delays.append((seen - pending.pop(account_id)).total_seconds())


def recompute_seconds(ctx):
    ids = ctx.account_ids[:FRESHNESS_ACCOUNTS_PER_REQUEST]
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        pipeline.recompute_accounts(tenant=ctx.tenant, account_ids=ids)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)
