"""The recompute pipeline: one place that says what happens after data changes.

    ingest / edits ─▶ Account.dirty_at set ─▶ tasks.schedule_recompute(tenant)
    recompute_dirty(tenant) ─▶ for each chunk of dirty accounts:
        1 metrics    per-account metric values from the daily rollups
        2 health     score with the scorecard of the account's current stage
        3 lifecycle  entry criteria → advance stages, record transitions;
                     accounts that moved are scored again with their new stage
    then the chunk's dirty marks are cleared, unless the account changed again
    meanwhile (its dirty_at is newer than the moment the chunk was read).

Later steps (alerts, playbooks) plug in after lifecycle, in this module.
"""

from django.utils import timezone

from csplatform.customers.models import Account
from csplatform.rules.metrics import metrics_compute
from csplatform.tenancy.models import Tenant
from health.services import health_score
from lifecycle.services import lifecycle_advance

CHUNK_SIZE = 2000


def recompute_accounts(*, tenant, account_ids):
    """Run every step over these accounts of one tenant. Safe to run twice."""
    metrics_compute(tenant=tenant, account_ids=account_ids)
    health_score(tenant=tenant, account_ids=account_ids)
    moved = lifecycle_advance(tenant=tenant, account_ids=account_ids)
    if moved:
        health_score(tenant=tenant, account_ids=list(moved))
    return {"accounts": len(account_ids), "moved": len(moved)}


def recompute_dirty(*, tenant, chunk_size=CHUNK_SIZE):
    """Process the tenant's dirty accounts chunk by chunk; returns counts.

    1. Note the time, then read a chunk of dirty account ids.
    2. Recompute them.
    3. Clear dirty_at only where it is not newer than the noted time, so an
       event that arrived during the run keeps its account dirty for the next.
    """
    totals = {"accounts": 0, "moved": 0}
    seen = set()
    while True:
        read_at = timezone.now()
        ids = list(
            Account.objects.for_tenant(tenant)
            .dirty()
            .exclude(pk__in=seen)
            .order_by("dirty_at", "pk")
            .values_list("pk", flat=True)[:chunk_size]
        )
        if not ids:
            return totals
        result = recompute_accounts(tenant=tenant, account_ids=ids)
        Account.objects.for_tenant(tenant).filter(pk__in=ids, dirty_at__lte=read_at).update(dirty_at=None)
        seen.update(ids)
        for key in totals:
            totals[key] += result[key]


def mark_all_dirty(*, tenant):
    """The periodic full sweep: time alone changes days-in-stage and date windows."""
    return Account.objects.for_tenant(tenant).update(dirty_at=timezone.now())


def tenants_with_dirty_accounts():
    return list(
        Tenant.objects.filter(pk__in=Account.objects.dangerously_all_tenants().dirty().values("tenant_id")).values_list(
            "pk", flat=True
        )
    )
