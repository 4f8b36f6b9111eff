"""`make bench` proves itself at SCALE=tiny: every figure measured beside its baseline, nothing lost on the way."""

import datetime as dt
import json
import os
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from bench.data import Plan
from bench.database import database_problem
from bench.report import table_text
from bench.scales import SCALES

ON_POSTGRES = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
FIGURES = {
    "build", "ingest_batch_api", "ingest_segment_api", "pipeline_all_accounts", "pipeline_one_helper",
    "pipeline_vs_naive_loop", "pipeline_peak_rss", "pipeline_growth", "pipeline_history", "page_portfolio",
    "page_account_page", "page_accounts_api", "export_all_accounts", "export_peak_rss", "freshness",
}


def test_bench_refuses_a_database_it_could_wrongly_empty():
    postgres = "django.db.backends.postgresql"
    assert "PostgreSQL" in database_problem({"ENGINE": "django.db.backends.sqlite3", "NAME": "bench.sqlite3"})
    assert "must contain 'bench'" in database_problem({"ENGINE": postgres, "NAME": "csplatform"})
    assert database_problem({"ENGINE": postgres, "NAME": "csplatform_bench"}) is None


def test_bench_table_prints_one_row_per_figure_with_its_baseline():
    results = {
        "pipeline_all_accounts": {"value": 6.0, "unit": "s", "baseline": 2.0, "baseline_unit": "s (floor)",
                                  "ratio": 3.0, "target": "ratio <= 3"},
        "freshness": {"value": None, "unit": "s p95", "baseline": 0.1, "baseline_unit": "s", "ratio": None,
                      "target": "p95 <= 10 s"},
    }
    lines = table_text(results).splitlines()
    assert lines[0].split()[:3] == ["figure", "value", "unit"]
    assert lines[2].split()[:6] == ["pipeline_all_accounts", "6", "s", "2", "s", "(floor)"]
    assert lines[3].split()[:2] == ["freshness", "n/a"]


def test_live_bench_events_are_stamped_now_and_come_only_from_accounts_still_active():
    plan = Plan(SCALES["tiny"], seed=1)
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    events = list(plan.events(2000, "live-", live=True))
    after = dt.datetime.now(dt.timezone.utc)
    quiet = {index for index, days in enumerate(plan.quiet_days) if days}
    assert quiet
    assert not {account_index for _, account_index, *_ in events} & quiet
    assert all(before <= dt.datetime.fromisoformat(event[4]) <= after for event in events)


def test_backfilled_bench_events_span_the_history_and_spare_the_quiet_accounts_recent_days():
    plan = Plan(SCALES["tiny"], seed=1)
    events = list(plan.events(2000, "ev-"))
    ages = [(plan.now - dt.datetime.fromisoformat(event[4])).days for event in events]
    assert max(ages) >= SCALES["tiny"].days - 5
    assert all(age >= plan.quiet_days[event[1]] for age, event in zip(ages, events))


def bench_database_url():
    """The test's PostgreSQL server with a database of the harness's own, beside pytest's test database."""
    url = urlsplit(os.environ["DATABASE_URL"])
    return url._replace(path=f"{url.path.rstrip('/')}_bench").geturl()


@pytest.mark.bench
@pytest.mark.skipif(not ON_POSTGRES, reason="the benchmark builds its data with PostgreSQL COPY; run with DATABASE_URL")
def test_bench_at_tiny_scale_measures_every_figure_against_its_baseline(tmp_path):
    out = tmp_path / "results.json"
    # Its own var dir and no REDIS_URL: the worker and beat use a filesystem broker nobody else reads.
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env.update(DATABASE_URL=bench_database_url(), CSP_VAR_DIR=str(tmp_path))
    run = subprocess.run(
        [sys.executable, "manage.py", "bench", "--scale", "tiny", "--out", str(out)],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=280,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(out.read_text())

    assert FIGURES <= set(results)
    for name, item in results.items():
        assert item["value"] > 0 and item["baseline"] > 0, name
        assert item["ratio"] == pytest.approx(item["value"] / item["baseline"], rel=0.01), name
        assert name in run.stdout
    for name in ("ingest_batch_api", "ingest_segment_api"):
        assert results[name]["stored"] == results[name]["events"] == 10_000
        assert results[name]["statuses"] == {"200": results[name]["requests"]}
    assert results["pipeline_all_accounts"]["accounts"] == 1_000
    assert set(results["pipeline_growth"]["points"]) == {"1/10", "1/3", "1/1"}
    assert results["pipeline_history"]["rollup_rows_added"] > 0
    assert results["export_all_accounts"]["rows"] == 1_000
    for name in (name for name in results if name.startswith("page_")):
        assert results[name]["statuses"] == {"200": results[name]["requests"]}
        assert results[name]["queries"] == results[name]["queries_at_smaller_scale"], name
        # Each request's time in the server is part of its time at the client.
        assert results[name]["client_p95_ms"] >= results[name]["value"], name
    assert results["freshness"]["never_fresh"] == 0
