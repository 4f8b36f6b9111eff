"""Downloads one tenant's portfolio file in a process of its own; prints seconds, rows, size and memory as JSON.

`python -m bench.export_child <tenant slug> <user email>`: a separate process
so that its peak RSS is the download's alone, as a web worker serving it.
"""

import json
import sys
import time

from bench.child import peak_rss_kb, setup


def main(slug, email):
    setup(slug)
    from django.test import Client
    from django.urls import reverse

    from csplatform.tenancy.models import User

    client = Client()
    client.force_login(User.objects.get(email=email))
    idle_kb = peak_rss_kb()
    start = time.perf_counter()
    response = client.get(reverse("portfolio-export", args=[slug]))
    assert response.status_code == 200, response.status_code
    lines = size = 0
    for part in response.streaming_content:
        lines += part.count(b"\n")
        size += len(part)
    seconds = time.perf_counter() - start
    print(json.dumps(
        {"seconds": seconds, "rows": lines - 1, "bytes": size, "idle_kb": idle_kb, "peak_kb": peak_rss_kb()}
    ))


if __name__ == "__main__":
    main(*sys.argv[1:3])
