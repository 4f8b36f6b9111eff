"""Each figure beside its baseline, measured in the same run on the same data.

A figure is a dict {value, unit, baseline, baseline_unit, ratio, target}
plus details; `ratio` is value / baseline, so its meaning (higher or lower
is better) is stated in `target`.
"""

import base64
import datetime as dt
import http.client
import io
import json
import re
import statistics
import struct
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

from django.db import connection, transaction
from django.db.models import Sum
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from csplatform import pipeline
from csplatform.customers.models import Account, DailyRollup, UsageEvent
from csplatform.tenancy.models import Tenant
from csplatform.tenancy.rls import dangerously_bypass_rls, tenant_context
from csplatform.tenancy.services import api_key_create, membership_set, user_get_or_create
from health.models import HealthScore

from . import processes
from .data import EVENT_COLUMNS
from .database import database_settle, table

REQUEST_EVENTS = 500
INGEST_CLIENTS = 4
COPY_RUNS = 3
FLOOR_RUNS = 3
# Issue 8: the pages answer 20 clients at once.
PAGE_CLIENTS = 20
# A fifth of the page's requests (Scale.page_requests) again with one client alone.
PAGE_ALONE_SHARE = 5
# Candidate route names of pages other apps may provide; a missing one is reported, not failed.
PAGE_ROUTES = {
    "portfolio": ("portfolio", {}),
    "board": ("board", {}),
    "account_page": ("account-detail", {"account_id": None}),
}
DECLARE_CURSOR = re.compile(r"^\s*DECLARE\s+\S+\s+.*?\bFOR\s+", re.IGNORECASE | re.DOTALL)


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


PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
BINARY_COPY_HEADER = b"PGCOPY\n\xff\r\n\0" + struct.pack(">ii", 0, 0)
BINARY_NULL = struct.pack(">i", -1)


def binary_field(data):
    return struct.pack(">i", len(data)) + data


def binary_bigint(number):
    return binary_field(struct.pack(">q", number))


def binary_timestamp(moment):
    # timestamptz: microseconds since 2000-01-01 UTC.
    delta = moment - PG_EPOCH
    return binary_field(struct.pack(">q", (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds))


def binary_event_rows(tenant_id, events, account_ids, contact_ids, received_at):
    """The events in PostgreSQL's binary COPY format, columns as EVENT_COLUMNS."""
    received = binary_timestamp(received_at)
    rows = [BINARY_COPY_HEADER]
    for message_id, account_index, contact_index, name, timestamp, properties in events:
        rows.append(
            struct.pack(">h", len(EVENT_COLUMNS))
            + binary_bigint(tenant_id)
            + binary_field(message_id.encode())
            + binary_bigint(account_ids[account_index])
            + (BINARY_NULL if contact_index is None else binary_bigint(contact_ids[contact_index]))
            + binary_field(name.encode())
            + binary_timestamp(dt.datetime.fromisoformat(timestamp))
            # jsonb: a version byte, then the JSON text.
            + binary_field(b"\x01" + json.dumps(properties).encode())
            + received
        )
    rows.append(struct.pack(">h", -1))
    return b"".join(rows)


def copy_rate(ctx, events):
    """Rows per second of a binary COPY of the same rows into the same table, the best of COPY_RUNS.

    The foreign keys are deferred to commit, so they are checked before the
    clock stops, as a committed COPY would; then it rolls back so that the
    data stays as built. The best run is the baseline: one slow moment on a
    shared machine must not make the API look better.
    """
    data = binary_event_rows(ctx.tenant.pk, events, ctx.account_ids, ctx.contact_ids, timezone.now())
    timings = []
    for _ in range(COPY_RUNS):
        start = time.perf_counter()
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.cursor.copy_expert(
                    f"COPY {table(UsageEvent)} ({', '.join(EVENT_COLUMNS)}) FROM STDIN WITH (FORMAT binary)",
                    io.BytesIO(data),
                )
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            timings.append(time.perf_counter() - start)
            transaction.set_rollback(True)
    return len(events) / min(timings)


def ingest_figures(ctx, port, scale):
    """Events/s through each ingest API under INGEST_CLIENTS clients, beside a binary COPY of the same rows;
    with the p50 and p99 per request. Each API is first warmed with empty batches, so that the first
    request of each worker, which loads the URL configuration and views, does not count as the p99."""
    stamp = run_stamp()
    write_key = base64.b64encode(f"{ctx.key}:".encode()).decode()
    runs = {
        "ingest_batch_api": (f"api{stamp}-", api_bodies, "/api/v1/events/batch", f"Bearer {ctx.key}", "events"),
        "ingest_segment_api": (f"seg{stamp}-", segment_bodies, "/api/segment/v1/batch", f"Basic {write_key}", "batch"),
    }
    events = {name: list(ctx.plan.events(scale.api_events, prefix)) for name, (prefix, *_) in runs.items()}
    # The baseline goes first and is rolled back, so the API then stores these very rows.
    baseline = copy_rate(ctx, events["ingest_batch_api"])
    results = {}
    for name, (prefix, bodies, path, authorization, key) in runs.items():
        headers = {"Content-Type": "application/json", "Authorization": authorization}
        empty = json.dumps({key: []}).encode()
        processes.drive(port, [("POST", path, empty, headers)] * 2 * INGEST_CLIENTS, INGEST_CLIENTS)
        requests = [("POST", path, body, headers) for body in bodies(events[name])]
        latencies, wall, statuses = processes.drive(port, requests, INGEST_CLIENTS)
        stored = UsageEvent.objects.for_tenant(ctx.tenant).filter(message_id__startswith=prefix).count()
        results[name] = figure(
            stored / wall, "events/s", baseline, "events/s (binary COPY of the same rows)",
            ">= 20,000 events/s, ratio >= 0.1 (stretch 50,000 and 0.25), p99 <= 250 ms",
            events=len(events[name]), stored=stored, requests=len(requests), clients=INGEST_CLIENTS,
            events_per_request=REQUEST_EVENTS, statuses=statuses,
            p50_ms=rounded(1000 * processes.percentile(latencies, 50)),
            p99_ms=rounded(1000 * processes.percentile(latencies, 99)),
        )
    return results


# 2, 5, 6. Pipeline, memory, growth ---------------------------------------------------------------------


def pipeline_run(slug, with_helper=False):
    """The full pipeline over every account of a tenant, in a child process.

    Returns the median steady-state pass {seconds, accounts, moved}, every
    steady pass's seconds under "steady_passes", the first pass under
    "first_pass", and the process's idle and peak RSS; `with_helper`, the
    seconds of as many passes with one helper process, and the chunks it
    took in each, under "steady_passes_with_helper".
    """
    output = subprocess.run(
        [sys.executable, "-m", "bench.child", slug, *(["--with-helper"] if with_helper else [])], check=True,
        capture_output=True, text=True, env=processes.child_env(),
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def floor_seconds(tenant):
    """One INSERT ... SELECT ... GROUP BY account over the rollups into a scratch table: reading the data once.

    The best of FLOOR_RUNS, as the COPY baseline is: one slow moment on a
    shared machine must not make the pipeline's ratio look better.
    """
    today = dt.date.today()
    windows = {days: today - dt.timedelta(days=days - 1) for days in (7, 30, 90)}
    timings = []
    for _ in range(FLOOR_RUNS):
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
        timings.append(time.perf_counter() - start)
    return min(timings)


def naive_seconds_per_account(tenant, sample):
    """The pipeline called one account at a time, as a per-account ORM loop would run it."""
    ids = list(Account.objects.for_tenant(tenant).order_by("pk").values_list("pk", flat=True)[:sample])
    start = time.perf_counter()
    for account_id in ids:
        pipeline.recompute_accounts(tenant=tenant, account_ids=[account_id])
    return (time.perf_counter() - start) / len(ids), len(ids)


# The history figure copies a tenant's daily rollups this many times, each copy HISTORY_SHIFT_DAYS further
# back: with the 90 days built, a year and a quarter of history.
HISTORY_COPIES = 4
HISTORY_SHIFT_DAYS = 91


@contextmanager
def older_history(tenant):
    """Give the tenant's accounts HISTORY_COPIES times its daily rollups again, before the days built; removed
    afterwards. Yields the number of rollup rows added."""
    first_day = DailyRollup.objects.for_tenant(tenant).order_by("day").values_list("day", flat=True).first()
    columns = ["tenant_id", "account_id", "contact_ref", "day", "event", "count"]
    shifted = ", ".join("day - %(shift)s * copy" if column == "day" else column for column in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table(DailyRollup)} ({', '.join(columns)}) SELECT {shifted} "
            f"FROM {table(DailyRollup)}, generate_series(1, %(copies)s) AS copy WHERE tenant_id = %(tenant)s",
            {"shift": HISTORY_SHIFT_DAYS, "copies": HISTORY_COPIES, "tenant": tenant.pk},
        )
        added = cursor.rowcount
    try:
        database_settle(DailyRollup)
        yield added
    finally:
        DailyRollup.objects.for_tenant(tenant).filter(day__lt=first_day).delete()
        # The rows deleted would otherwise stay in the table for the figures after this one to scan.
        database_settle(DailyRollup)


def pipeline_figures(ctx, scale, growth_tenants):
    """growth_tenants: [(divisor, tenant)] built at fractions of the scale, besides the main tenant."""
    runs = {divisor: pipeline_run(tenant.slug) for divisor, tenant in growth_tenants}
    runs[1] = pipeline_run(ctx.tenant.slug, with_helper=True)
    main = runs[1]
    helped = sorted(seconds for seconds, _ in main["steady_passes_with_helper"])
    floor = floor_seconds(ctx.tenant)
    per_account, sampled = naive_seconds_per_account(ctx.tenant, min(scale.naive_sample, max(1, scale.accounts // 10)))
    naive = per_account * scale.accounts
    smallest = max(runs)
    # History is measured on the larger growth tenant: on the smaller one a pass is too short to tell.
    history_divisor, history_tenant = min(growth_tenants)
    with older_history(history_tenant) as added_rows:
        with_history = pipeline_run(history_tenant.slug)
    results = {
        "pipeline_all_accounts": figure(
            main["seconds"], "s", floor, "s (one INSERT ... SELECT ... GROUP BY over the rollups)", "ratio <= 3",
            accounts=main["accounts"], accounts_per_s=rounded(main["accounts"] / main["seconds"]),
            moved=main["moved"], steady_passes_s=[rounded(seconds) for seconds in main["steady_passes"]],
            first_pass_s=rounded(main["first_pass"]["seconds"]),
            first_pass_moved=main["first_pass"]["moved"],
        ),
        "pipeline_one_helper": figure(
            helped[len(helped) // 2], "s", floor, "s (one INSERT ... SELECT ... GROUP BY over the rollups)",
            "ratio <= 3", steady_passes_s=[rounded(seconds) for seconds, _ in main["steady_passes_with_helper"]],
            helper_chunks=[chunks for _, chunks in main["steady_passes_with_helper"]],
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
        "pipeline_history": figure(
            with_history["seconds"], "s", runs[history_divisor]["seconds"],
            f"s (the same 1/{history_divisor} tenant with only the 90 days built)",
            "ratio <= 1.2 (a pass costs the same however long the history)",
            history_days=90 + HISTORY_COPIES * HISTORY_SHIFT_DAYS, rollup_rows_added=added_rows,
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
    """The page's queries when served in-process: their SQL, in order.

    A first request is left out, so that once-per-interval writes (an API
    key's last-used time) do not count at one scale and not the other, and
    so that the whole-tenant summaries a page keeps for a minute are warm, as
    they are for all but one request a minute.
    """
    client.get(path, **headers)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, **headers)
    assert response.status_code == 200, f"{path} answered {response.status_code}"
    return [query["sql"] for query in queries.captured_queries]


def replayable(sql):
    """The statement as plain SQL to run again, or None for one that only steers the session.

    A server-side cursor (`.iterator()`) reads its SELECT through DECLARE; the
    SELECT is what the database works on.
    """
    sql = DECLARE_CURSOR.sub("", sql)
    return sql if sql.lstrip().upper().startswith(("SELECT", "WITH")) else None


def raw_sql_p95(queries, clients, runs):
    """p95 seconds of all the page's queries run as raw SQL, one set after another on each of
    `clients` connections at once: the database work of one request, under the load the page had."""
    statements = [sql for sql in map(replayable, queries) if sql is not None]
    timings, lock = [], threading.Lock()

    def client():
        mine = []
        try:
            with connection.cursor() as cursor:
                for _ in range(runs):
                    start = time.perf_counter()
                    for sql in statements:
                        cursor.execute(sql)
                        cursor.fetchall()
                    mine.append(time.perf_counter() - start)
        finally:
            connection.close()
        with lock:
            timings.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return processes.percentile(timings, 95)


def page_figures(ctx, port, small_tenant, log):
    """Each page's server p95 and p99 with PAGE_CLIENTS clients at once, beside its own queries run as raw
    SQL by as many clients as the server handles requests at once; and its query count here and on a tenant
    a tenth the size.

    The server's time is gunicorn's own for each request. The clients' p95
    and p99 add the wait for a free worker, and are kept beside it.
    """
    at_once = processes.WORKERS * processes.THREADS
    requests = ctx.plan.scale.page_requests
    requests_alone = requests // PAGE_ALONE_SHARE
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
        queries = captured(path, client, {"HTTP_AUTHORIZATION": f"Bearer {ctx.key}"} if is_api else {})
        small_queries = captured(
            small_paths[name], client, {"HTTP_AUTHORIZATION": f"Bearer {small_key}"} if is_api else {}
        )
        headers = {"Authorization": f"Bearer {ctx.key}"} if is_api else {"Cookie": ctx.session_cookie}
        request = ("GET", path, None, headers)
        latencies, served, statuses = processes.drive_served(port, [request] * requests, PAGE_CLIENTS)
        # One client alone: the cost of a request without others sharing the cores.
        _, served_alone, _ = processes.drive_served(port, [request] * requests_alone, 1)
        results[f"page_{name}"] = figure(
            1000 * processes.percentile(served, 95), "ms p95",
            1000 * raw_sql_p95(queries, at_once, requests // at_once),
            f"ms p95 (its {len(queries)} queries as raw SQL, {at_once} clients)",
            "p95 <= 100 ms, p99 <= 300 ms, ratio <= 3; same query count at both scales",
            p99_ms=rounded(1000 * processes.percentile(served, 99)),
            client_p95_ms=rounded(1000 * processes.percentile(latencies, 95)),
            client_p99_ms=rounded(1000 * processes.percentile(latencies, 99)),
            clients=PAGE_CLIENTS, requests=requests, statuses=statuses,
            queries=len(queries), queries_at_smaller_scale=len(small_queries),
            one_client_p95_ms=rounded(1000 * processes.percentile(served_alone, 95)),
            one_client_raw_sql_p95_ms=rounded(1000 * raw_sql_p95(queries, 1, requests_alone)),
        )
    return results


# 3. Freshness ------------------------------------------------------------------------------------------

FRESHNESS_INTERVAL = 1.0
FRESHNESS_ACCOUNTS_PER_REQUEST = 5
FRESHNESS_WAIT = 120
# How often the sampled accounts' health is read: a delay is known to within this.
FRESHNESS_POLL = 0.1
BACKGROUND_CLIENTS = 2


@contextmanager
def background_ingest(ctx, port, rate, seconds):
    """Batches of live events through the batch API at `rate` events/s (paced, not flat out) while the block runs.

    Yields a dict that holds, once the block ends, the events the API
    acknowledged and the rate it really reached: on a machine that cannot
    take `rate`, the figure says so instead of pretending.
    """
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {ctx.key}"}
    bodies = list(api_bodies(list(ctx.plan.events(int(rate * seconds), f"load{run_stamp()}-", live=True))))
    interval = REQUEST_EVENTS * BACKGROUND_CLIENTS / rate
    stop = threading.Event()
    done = {"acknowledged": 0, "statuses": {}}
    lock = threading.Lock()

    def client(share):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        start = time.monotonic()
        for number, body in enumerate(share):
            if stop.wait(max(0.0, start + number * interval - time.monotonic())):
                break
            connection.request("POST", "/api/v1/events/batch", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            with lock:
                done["statuses"][response.status] = done["statuses"].get(response.status, 0) + 1
                if response.status < 300:
                    done["acknowledged"] += REQUEST_EVENTS
        connection.close()

    threads = [threading.Thread(target=client, args=(bodies[i::BACKGROUND_CLIENTS],))
               for i in range(BACKGROUND_CLIENTS)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        yield done
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        done["events_per_s"] = rounded(done["acknowledged"] / (time.monotonic() - start))


def freshness_figure(ctx, port):
    """Ingest in the background at half the target rate, with a real worker and beat; meanwhile send
    single events for sampled accounts and time until each one's new health is visible.

    Each sampled request carries one event for each of a few accounts; an
    account is fresh once its HealthScore was computed after the request was answered.
    """
    seconds = ctx.plan.scale.freshness_requests * FRESHNESS_INTERVAL + 10
    rate = ctx.plan.scale.background_rate
    with background_ingest(ctx, port, rate, seconds) as load:
        delays, never_fresh, behind = fresh_delays(ctx, port)
    p95 = processes.percentile(delays, 95) if not never_fresh else None
    work = recompute_seconds(ctx)
    return figure(
        p95, "s p95", work, f"s (recompute of {FRESHNESS_ACCOUNTS_PER_REQUEST} accounts in-process)",
        "p95 <= 5 s", p50_s=rounded(processes.percentile(delays, 50)), accounts=len(delays),
        never_fresh=never_fresh, background_target_events_per_s=rate,
        background_events_per_s=load["events_per_s"], background_statuses=load["statuses"],
        reported_behind_p95_s=rounded(processes.percentile(behind, 95)),
    )


def dirty_backlog_drain():
    """Recompute every tenant's marked accounts here, untimed, so that a figure meets only its own changes.

    A build marks every account of every tenant. Measured right after it
    (`--only pages`, `--only freshness`), the pages would show no health or
    stage yet, and the worker would spend the freshness figure placing whole
    tenants.
    """
    with dangerously_bypass_rls():
        tenant_ids = pipeline.tenants_with_dirty_accounts()
    for tenant in Tenant.objects.filter(pk__in=tenant_ids):
        with tenant_context(tenant):
            pipeline.recompute_dirty(tenant=tenant)


def fresh_delays(ctx, port):
    """(seconds from each sampled event's answer to its account's new health, how many never got there,
    how far behind `pipeline_freshness` said the results were, once a request)."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {ctx.key}"}
    requests = ctx.plan.scale.freshness_requests
    sample = ctx.plan.rng.sample(range(len(ctx.account_ids)), requests * FRESHNESS_ACCOUNTS_PER_REQUEST)
    pending = {}
    delays, behind = [], []
    stamp = run_stamp()
    next_request = time.monotonic()
    for number in range(requests):
        indexes = sample[number * FRESHNESS_ACCOUNTS_PER_REQUEST : (number + 1) * FRESHNESS_ACCOUNTS_PER_REQUEST]
        now = timezone.now()
        events = [{"message_id": f"fresh{stamp}-{number}-{index}", "account": f"acc-{index:07d}", "event": "login",
                   "timestamp": now.isoformat()} for index in indexes]
        processes.drive(port, [("POST", "/api/v1/events/batch", json.dumps({"events": events}).encode(), headers)], 1)
        answered = timezone.now()
        for index in indexes:
            pending[ctx.account_ids[index]] = answered
        behind.append(pipeline.pipeline_freshness(tenant=ctx.tenant).behind_seconds)
        next_request += FRESHNESS_INTERVAL
        while time.monotonic() < next_request:
            poll_fresh(ctx.tenant, pending, delays)
            time.sleep(FRESHNESS_POLL)
    deadline = time.monotonic() + FRESHNESS_WAIT
    while pending and time.monotonic() < deadline:
        poll_fresh(ctx.tenant, pending, delays)
        time.sleep(FRESHNESS_POLL)
    return delays, len(pending), behind


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
