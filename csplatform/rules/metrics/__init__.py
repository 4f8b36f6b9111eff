"""Per-account and per-contact metric values, computed set-based from the daily rollups.

`metrics_compute` reads only DailyRollup and DailyPropertyRollup (never raw
events) and issues a fixed number of queries per chunk of accounts, whatever
the chunk's size: one grouped query per metric family, each metric a
conditional aggregate of it. The values land in AccountMetrics and
ContactMetrics as `{key: number or null}`, which the criteria language reads
as `metric.<key>` and `contact.metric.<key>`.

The rollups are read over the longest window only, so a pass costs the same
however long the tenant's history. What lies before it matters only for
"days since last seen": a contact's comes from its `last_seen_at` (ingest
keeps it at the contact's newest event), and an account with no event in any
window has its last day looked up alone, one index entry per account.

Windows count tenant-local days and include today: a 7-day window is today
and the six days before it. Everything is as of `today`, which may be a past
day (health backfill replays history): rollups after it are not read, and a
contact's `last_seen_at` after it gives way to the last rollup day up to it.

    specs.py    what is computed: the built-ins, a tenant's definitions, windows
    rollups.py  the grouped queries over the rollups, one per metric family
    compute.py  metrics_compute: chunks of accounts, values assembled per row
    store.py    the upsert that writes only the rows whose values changed
    fields.py   `metric.<key>` and `contact.metric.<key>` for the criteria language
"""

from .compute import metrics_compute
from .fields import register_criteria_fields
from .rollups import trend_percent
from .specs import BUILTIN_METRICS, RESERVED_KEYS, MetricSpec, builtin_metrics, distinct_value_properties

__all__ = [
    "BUILTIN_METRICS",
    "RESERVED_KEYS",
    "MetricSpec",
    "builtin_metrics",
    "distinct_value_properties",
    "metrics_compute",
    "register_criteria_fields",
    "trend_percent",
]
