import json
from pathlib import Path

COLUMNS = ("figure", "value", "unit", "baseline", "baseline unit", "ratio", "target")


def table_text(results):
    """The figures as a plain-text table, one row each, in the order measured."""
    rows = [COLUMNS]
    for name, item in results.items():
        rows.append(
            (name, show(item["value"]), item["unit"], show(item["baseline"]), item["baseline_unit"],
             show(item["ratio"]), item["target"])
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def show(number):
    return "n/a" if number is None else f"{number:g}"


def results_write(path, results):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
