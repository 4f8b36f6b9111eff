"""Whole-tenant figures shown beside a page of rows, computed at most once a minute per tenant.

Counting every account of a large tenant on every request would cost more
than the rest of the page, so these figures may be up to SUMMARY_SECONDS
old. A page that changes what they count (moving an account, overriding its
health) forgets them, so its user sees the change at once. While the cache
is unreachable, each page computes its figures itself: slower, never an error.
"""

import logging
import time

from django.core.cache import cache

from .ratelimit import CACHE_ERRORS

logger = logging.getLogger(__name__)

SUMMARY_SECONDS = 60


def _generation_key(tenant):
    # The creation time too: a test database reuses tenant ids, and a new tenant must never read an old one's figures.
    return f"summary-generation:{tenant.pk}:{tenant.created_at.timestamp()}"


def tenant_summary(tenant, name, compute):
    """The cached value of `compute()` for this tenant, computed now if missing, expired or forgotten."""
    generation_key = _generation_key(tenant)
    try:
        key = f"{generation_key}:{cache.get(generation_key, 0)}:{name}"
        value = cache.get(key)
    except CACHE_ERRORS as exc:
        logger.warning("Summary %s computed without the cache, which is unreachable: %s", name, exc)
        return compute()
    if value is None:
        value = compute()
        try:
            cache.set(key, value, SUMMARY_SECONDS)
        except CACHE_ERRORS as exc:
            logger.warning("Summary %s not kept, the cache is unreachable: %s", name, exc)
    return value


def tenant_summaries_forget(tenant):
    """Forget every summary of the tenant: the next page computes its own afresh.

    With the cache unreachable no page reads what it holds, and each of its
    summaries expires within SUMMARY_SECONDS of being computed.
    """
    try:
        cache.set(_generation_key(tenant), time.time_ns(), None)
    except CACHE_ERRORS as exc:
        logger.warning("Summaries not forgotten, the cache is unreachable: %s", exc)
