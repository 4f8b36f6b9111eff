"""Runs the full pipeline over one tenant in a process of its own, a first pass and STEADY_PASSES more;
prints times and peak memory as JSON.

`python -m bench.child <tenant slug>`: a separate process so that its peak
RSS is the pipeline's alone, not the harness's.
"""

import json
import os
import resource
import sys
import time

STEADY_PASSES = 3


def peak_rss_kb():
    """This process's peak resident set size in kB.

    Linux keeps the larger of the parent's peak and the child's in
    getrusage()'s ru_maxrss across fork and exec, so a child of a big harness
    would report the harness's size; VmHWM in /proc counts this program only.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(slug):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings")
    import django

    django.setup()
    from csplatform import pipeline
    from csplatform.tenancy.models import Tenant

    tenant = Tenant.objects.get(slug=slug)
    idle_kb = peak_rss_kb()
    # The first pass places every account in its first stages; the steady passes after it are what the
    # hourly full sweep repeats, and their median is the figure: one pass alone swings with a shared machine.
    passes = []
    for _ in range(1 + STEADY_PASSES):
        start = time.perf_counter()
        pipeline.mark_all_dirty(tenant=tenant)
        totals = pipeline.recompute_dirty(tenant=tenant)
        passes.append({"seconds": time.perf_counter() - start, **totals})
    first, steady = passes[0], passes[1:]
    median = sorted(steady, key=lambda run: run["seconds"])[len(steady) // 2]
    peak_kb = peak_rss_kb()
    print(json.dumps({
        **median, "steady_passes": [run["seconds"] for run in steady], "first_pass": first, "idle_kb": idle_kb,
        "peak_kb": peak_kb,
    }))


if __name__ == "__main__":
    main(sys.argv[1])
