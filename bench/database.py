"""The benchmark's own PostgreSQL database: created when missing, emptied before each run, settled and kept
quiet while a figure is measured."""

import datetime as dt
from contextlib import contextmanager

import psycopg2
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.models import F
from django.utils import timezone
from psycopg2 import sql

from playbooks.models import StepRun, StepRunStatus


class BenchError(Exception):
    """The benchmark cannot run as asked; the message says why."""


def table(model):
    return connection.ops.quote_name(model._meta.db_table)


def database_problem(config):
    """Why this database must not be used (and emptied) by the benchmark, or None."""
    if config["ENGINE"] != "django.db.backends.postgresql":
        return "The benchmark needs PostgreSQL: set DATABASE_URL to a postgres:// URL."
    if "bench" not in config["NAME"]:
        return f"Refusing to empty database {config['NAME']!r}: its name must contain 'bench'."
    return None


def database_prepare():
    """Create the database if needed, migrate it, and empty every table.

    Emptying is a TRUNCATE of all tables, so the database name must say it is
    for benchmarks: a mistyped DATABASE_URL must never wipe real data.
    """
    config = settings.DATABASES["default"]
    problem = database_problem(config)
    if problem:
        raise BenchError(problem)
    name = config["NAME"]
    admin = psycopg2.connect(
        dbname="postgres", user=config["USER"], password=config["PASSWORD"] or None,
        host=config["HOST"] or None, port=config["PORT"] or None,
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    admin.close()
    call_command("migrate", interactive=False, verbosity=0)
    tables = [t for t in connection.introspection.table_names() if t != "django_migrations"]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(connection.ops.quote_name(t) for t in tables)} RESTART IDENTITY CASCADE")


def database_settle(*models):
    """VACUUM (ANALYZE) these models' tables, every table when none is named: the state autovacuum keeps
    a live database in.

    Right after a bulk build no page is marked all-visible, so every
    index-only scan (metrics read the rollups through a covering index)
    would also fetch each row from the table; measured on such a database
    the pipeline would pay a cost that production does not.
    """
    tables = ", ".join(map(table, models))
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {tables}")


# Far enough that no held-back step falls due while a figure is measured.
HOLD_BACK = dt.timedelta(days=36_500)


@contextmanager
def pending_steps_held_back():
    """Hold back the playbook steps pending when the block starts while it runs.

    The first pass over a built tenant enrols its accounts in its playbooks,
    and their steps fall due, or wait for business hours, while later figures
    run: a real beat would claim thousands of them in the middle of a figure
    that measures something else. Shifted by a fixed span and back, so their
    due times return unchanged; steps made meanwhile, due about now, are not.
    """
    StepRun.objects.dangerously_all_tenants().filter(status=StepRunStatus.PENDING).update(
        due_at=F("due_at") + HOLD_BACK
    )
    try:
        yield
    finally:
        StepRun.objects.dangerously_all_tenants().filter(
            status=StepRunStatus.PENDING, due_at__gt=timezone.now() + HOLD_BACK / 2
        ).update(due_at=F("due_at") - HOLD_BACK)
