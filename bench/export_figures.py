"""The portfolio's CSV file of every account: how long its download takes and how much memory it holds."""

import io
import json
import subprocess
import sys
import time

from django.db import connection

from csplatform.tenancy.services import membership_set
from health.exports import ROW_FIELDS
from health.views import portfolio_accounts

from . import processes
from .figures import COPY_RUNS, figure, rounded


def export_run(tenant, user):
    """The download of `tenant`'s whole portfolio file by `user`, in a child process."""
    membership_set(tenant=tenant, user=user, role="admin")
    output = subprocess.run(
        [sys.executable, "-m", "bench.export_child", tenant.slug, user.email], check=True, capture_output=True,
        text=True, env=processes.child_env(),
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def copy_csv_seconds(tenant):
    """PostgreSQL writing the same rows as CSV itself: one COPY of the file's query over every account.

    The best of COPY_RUNS: the database's share of the file, with no Python
    building rows or formatting cells.
    """
    sql, params = portfolio_accounts(tenant).values(*ROW_FIELDS).query.sql_with_params()
    timings = []
    with connection.cursor() as cursor:
        statement = cursor.cursor.mogrify(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)", params)
        for _ in range(COPY_RUNS):
            start = time.perf_counter()
            cursor.cursor.copy_expert(statement, io.BytesIO())
            timings.append(time.perf_counter() - start)
    return min(timings)


def export_figures(ctx, growth_tenants):
    """The whole file of the tenant beside one COPY of its rows, and its peak memory beside the file of the
    tenant a tenth the size: streamed a chunk at a time, the memory should not grow with the rows."""
    divisor, smaller = max(growth_tenants)
    main = export_run(ctx.tenant, ctx.user)
    small = export_run(smaller, ctx.user)
    return {
        "export_all_accounts": figure(
            main["seconds"], "s", copy_csv_seconds(ctx.tenant), "s (COPY of the same rows to CSV)",
            "reported (no target in issue 8)", rows=main["rows"], megabytes=rounded(main["bytes"] / 1e6),
            rows_per_s=rounded(main["rows"] / main["seconds"]),
        ),
        "export_peak_rss": figure(
            main["peak_kb"] / 1024, "MB", small["peak_kb"] / 1024, f"MB (the same file at 1/{divisor} of the accounts)",
            "ratio <= 1.5 (memory bounded by the chunk)", idle_mb=rounded(main["idle_kb"] / 1024),
        ),
    }
