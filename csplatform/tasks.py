import logging
import time
from functools import partial

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import OperationalError

from csplatform import digests, pipeline
from csplatform.tenancy.models import Tenant
from csplatform.tenancy.rls import dangerously_bypass_rls, tenant_context

logger = logging.getLogger(__name__)


@shared_task(name="csplatform.ping")
def ping(token):
    """Log the token; proves a worker consumes from the configured broker.

    `celery -A csplatform call csplatform.ping --args='["hello"]'` sends one.
    """
    logger.info("pong %s", token)
    return token


# The pipeline: thin tasks over csplatform.pipeline, all keyed by tenant id.
# Every one is safe to run twice: recomputing an account gives the same result.

RECOMPUTE_LOCK_SECONDS = 15 * 60
# A run under steady ingest hands over to a fresh task after this long, so no task runs without end.
RECOMPUTE_PASS_SECONDS = 5 * 60
# No longer than the countdown below, so every change is read by a run that starts after it.
SCHEDULE_DEBOUNCE_SECONDS = 1
# A helper that starts later than this would find its pass ended, or nearly.
HELPER_EXPIRES_SECONDS = 60


@shared_task(
    bind=True,
    name="csplatform.recompute_dirty",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def recompute_dirty_task(self, tenant_id):
    """Recompute the tenant's dirty accounts; at most one run per tenant at a time.

    A request that finds a run in flight leaves a note and returns; the run
    goes round again while notes arrive, so accounts changed meanwhile are
    recomputed at once instead of after a retry delay. The note is read again
    after the lock is released and the writer tries the lock again after
    writing it, so a note left in the last moment is seen by one of the two.
    """
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return None
    lock_key, again_key = f"pipeline:running:{tenant_id}", f"pipeline:again:{tenant_id}"
    if not cache.add(lock_key, 1, timeout=RECOMPUTE_LOCK_SECONDS):
        cache.set(again_key, 1, timeout=RECOMPUTE_LOCK_SECONDS)
        if not cache.add(lock_key, 1, timeout=RECOMPUTE_LOCK_SECONDS):
            return None
    # Helpers go to the queue this task came from, where the workers given to the pipeline listen.
    queue = (self.request.delivery_info or {}).get("routing_key")
    ask_for_helpers = partial(_ask_for_helpers, tenant_id, queue)
    started = time.monotonic()
    passes = []
    while True:
        try:
            cache.delete(again_key)
            with tenant_context(tenant):
                passes.append(pipeline.recompute_dirty(tenant=tenant, ask_for_helpers=ask_for_helpers))
        finally:
            cache.delete(lock_key)
        if not cache.get(again_key):
            return passes
        if time.monotonic() - started > RECOMPUTE_PASS_SECONDS:
            recompute_dirty_task.apply_async(args=[tenant_id], queue=queue, expires=600)
            return passes
        if not cache.add(lock_key, 1, timeout=RECOMPUTE_LOCK_SECONDS):
            return passes


def _ask_for_helpers(tenant_id, queue, pass_id):
    """Best effort: a pass that no helper joins is done by the process that opened it alone."""
    try:
        for _ in range(settings.CSP_PIPELINE_HELPERS):
            recompute_pass_help_task.apply_async(
                args=[tenant_id, pass_id], queue=queue, expires=HELPER_EXPIRES_SECONDS
            )
    except Exception:
        logger.warning("Could not ask for helpers with pass %s of tenant %s", pass_id, tenant_id, exc_info=True)


@shared_task(name="csplatform.recompute_pass_help")
def recompute_pass_help_task(tenant_id, pass_id):
    """Take chunks of a pass that another worker runs, until none is left (CSP_PIPELINE_HELPERS)."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return
    with tenant_context(tenant):
        pipeline.pass_help(tenant=tenant, pass_id=pass_id)


@shared_task(name="csplatform.sweep_dirty")
def sweep_dirty_task():
    """Every minute: recompute any tenant whose dirty accounts no run picked up."""
    with dangerously_bypass_rls():
        tenant_ids = pipeline.tenants_with_dirty_accounts()
    for tenant_id in tenant_ids:
        recompute_dirty_task.apply_async(args=[tenant_id], expires=120)


@shared_task(name="csplatform.full_sweep")
def full_sweep_task():
    """Every hour: mark every account dirty, since time alone moves date windows."""
    for tenant in Tenant.objects.all():
        with tenant_context(tenant):
            pipeline.mark_all_dirty(tenant=tenant)
        recompute_dirty_task.apply_async(args=[tenant.pk], expires=3600)


@shared_task(name="csplatform.digests_due")
def digests_due_task():
    """Every five minutes: write the daily digests of the members whose working day has just started."""
    return digests.digests_send_due()


def schedule_recompute(tenant_id):
    """Ask for a recompute of the tenant within a second or two (CSP_ACCOUNTS_CHANGED_HOOK).

    Debounced: one request per tenant per second reaches the broker. Best
    effort by design: the dirty marks are already committed and the minute
    sweep picks them up if Redis or the broker is unreachable, so an error there must
    not fail the request that changed the data.
    """
    try:
        if cache.add(f"pipeline:scheduled:{tenant_id}", 1, timeout=SCHEDULE_DEBOUNCE_SECONDS):
            recompute_dirty_task.apply_async(args=[tenant_id], countdown=SCHEDULE_DEBOUNCE_SECONDS, expires=600)
    except Exception:
        logger.warning("Could not enqueue the recompute of tenant %s; the sweep will catch up", tenant_id, exc_info=True)
