"""`make bench`: builds a large tenant on PostgreSQL and measures each figure beside a same-run baseline."""
