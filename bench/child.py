"""Runs the full pipeline over one tenant in a process of its own, a first pass and STEADY_PASSES more;
prints times and peak memory as JSON.

`python -m bench.child <tenant slug> [--with-helper]`: a separate process so
that its peak RSS is the pipeline's alone, not the harness's. With
`--with-helper`, STEADY_PASSES more passes follow, each with one helper
process taking part, as a worker's recompute task asks one
(CSP_PIPELINE_HELPERS=1); `--helper` is that process.
"""

import json
import os
import resource
import subprocess
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


def setup(slug):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings")
    import django

    django.setup()
    from csplatform.tenancy.models import Tenant

    return Tenant.objects.get(slug=slug)


def helper(slug):
    """Take part in each pass whose id arrives on stdin; say how many chunks it took when done with it."""
    tenant = setup(slug)
    from csplatform import pipeline

    print("ready", flush=True)
    for line in sys.stdin:
        print(pipeline.pass_help(tenant=tenant, pass_id=int(line)), flush=True)


def passes_with_helper(pipeline, tenant, slug):
    """`(seconds, chunks the helper took)` of STEADY_PASSES passes, each with one helper process asked to take part."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.child", slug, "--helper"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )

    asked = []

    def ask_for_helper(pass_id):
        asked.append(pass_id)
        process.stdin.write(f"{pass_id}\n")
        process.stdin.flush()

    try:
        process.stdout.readline()
        passes = []
        for _ in range(STEADY_PASSES):
            asked.clear()
            start = time.perf_counter()
            pipeline.mark_all_dirty(tenant=tenant)
            pipeline.recompute_dirty(tenant=tenant, ask_for_helpers=ask_for_helper)
            seconds = time.perf_counter() - start
            # A pass of one chunk asks for no helper. One asked may still be on its way out of the pass;
            # the next pass must find it waiting.
            passes.append((seconds, int(process.stdout.readline()) if asked else 0))
        return passes
    finally:
        process.stdin.close()
        process.wait(timeout=60)


def main(slug, with_helper):
    tenant = setup(slug)
    from csplatform import pipeline

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
    helped = passes_with_helper(pipeline, tenant, slug) if with_helper else []
    print(json.dumps({
        **median, "steady_passes": [run["seconds"] for run in steady], "first_pass": first, "idle_kb": idle_kb,
        "peak_kb": peak_kb, "steady_passes_with_helper": helped,
    }))


if __name__ == "__main__":
    if "--helper" in sys.argv[2:]:
        helper(sys.argv[1])
    else:
        main(sys.argv[1], with_helper="--with-helper" in sys.argv[2:])
