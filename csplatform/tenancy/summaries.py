"""Whole-tenant figures shown beside a page of rows, computed at most once a minute per tenant.

Counting every account of a large tenant on every request would cost more
than the rest of the page, so these figures may be up to SUMMARY_SECONDS
old. A page that changes what they count (moving an account, overriding its
health) forgets them, so its user sees the change at once.
"""

import time

from django.core.cache import cache

SUMMARY_SECONDS = 60


def _generation_key(tenant):
    # The creation time too: a test database reuses tenant ids, and a new tenant must never read an old one's figures.
    return f"summary-generation:{tenant.pk}:{tenant.created_at.timestamp()}"


def tenant_summary(tenant, name, compute):
    """The cached value of `compute()` for this tenant, computed now if missing, expired or forgotten."""
    generation_key = _generation_key(tenant)
    key = f"{generation_key}:{cache.get(generation_key, 0)}:{name}"
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, SUMMARY_SECONDS)
    return value


def tenant_summaries_forget(tenant):
    """Forget every summary of the tenant: the next page computes its own afresh."""
    cache.set(_generation_key(tenant), time.time_ns(), None)
