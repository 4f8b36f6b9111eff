"""No Celery delay may outlive the broker's visibility timeout.

Redis redelivers a message that stays unacknowledged longer than the
visibility timeout, so a `countdown`/`eta` beyond it runs the task twice (and
a long one keeps re-running). Long waits belong in database rows with a due
time. This test reads the code: every countdown, eta and retry backoff cap
must be a number it can work out, below the timeout.
"""

import ast
import operator
import runpy
from pathlib import Path

from django.conf import settings

from tests.security.conftest import record_figure

SOURCE_ROOTS = ["csplatform", "lifecycle", "health", "playbooks", "alerts"]
DELAY_KEYWORDS = {"countdown", "eta", "retry_backoff_max", "default_retry_delay"}
ARITHMETIC = {ast.Mult: operator.mul, ast.Add: operator.add, ast.Sub: operator.sub, ast.FloorDiv: operator.floordiv}


def visibility_timeout(monkeypatch):
    """The timeout settings.py gives the Redis broker, read by loading the settings as production would."""
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    production = runpy.run_path(str(Path(settings.BASE_DIR) / "csplatform" / "settings.py"))
    return production["CELERY_BROKER_TRANSPORT_OPTIONS"]["visibility_timeout"]


def module_constants(tree):
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = seconds(node.value, constants)
            if value is not None:
                constants[node.targets[0].id] = value
    return constants


def seconds(node, constants):
    """The number of seconds an expression stands for, or None when the code alone cannot tell."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.BinOp) and type(node.op) in ARITHMETIC:
        left, right = seconds(node.left, constants), seconds(node.right, constants)
        if left is not None and right is not None:
            return ARITHMETIC[type(node.op)](left, right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "min":
        bounds = [seconds(arg, constants) for arg in node.args]
        known = [b for b in bounds if b is not None]
        return min(known) if known else None
    return None


def delays_in(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    constants = module_constants(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg in DELAY_KEYWORDS:
                    yield keyword.arg, node.lineno, seconds(keyword.value, constants)


def test_no_countdown_eta_or_backoff_outlives_the_broker_visibility_timeout(monkeypatch):
    limit = visibility_timeout(monkeypatch)
    offenders, checked = [], 0
    for root in SOURCE_ROOTS:
        for path in sorted((Path(settings.BASE_DIR) / root).rglob("*.py")):
            for keyword, line, value in delays_in(path):
                checked += 1
                where = f"{path.relative_to(settings.BASE_DIR)}:{line} {keyword}"
                if value is None:
                    offenders.append(f"{where}: not a constant the test can bound")
                elif value >= limit:
                    offenders.append(f"{where}={value}s, visibility timeout is {limit}s")
    record_figure("celery delays checked against the visibility timeout", checked)
    assert checked > 0
    assert offenders == [], "\n".join(offenders)


def test_the_bound_check_reads_module_constants_and_arithmetic(tmp_path):
    source = tmp_path / "tasks.py"
    source.write_text("LOCK = 15 * 60\nf.apply_async(countdown=LOCK)\nf.retry(eta=when)\nf.retry(countdown=min(x, 30))\n")
    assert list(delays_in(source)) == [("countdown", 2, 900), ("eta", 3, None), ("countdown", 4, 30)]
