"""The recompute pipeline: one place that says what happens after data changes.

    ingest / edits ─▶ Account.dirty_at set ─▶ tasks.schedule_recompute(tenant)
    recompute_dirty(tenant) ─▶ for each chunk of dirty accounts:
        1 metrics    per-account metric values from the daily rollups
        2 health     score with the scorecard of the account's current stage
        3 lifecycle  entry criteria → advance stages, record transitions;
                     accounts that moved are scored again with their new stage
        4 segments   memberships entered and left
        5 alerts     rules → open or auto-resolve; webhooks for alerts, stage
                     moves and health colour changes
        6 playbooks  triggers matched by the changes above → runs enrolled
    then the chunk's dirty marks are cleared, unless the account changed again
    meanwhile (its dirty_at is newer than the moment the chunk was read).
"""

from django.db.models import Q
from django.utils import timezone

from alerts.account_events import account_changes_emit
from alerts.services import alert_webhooks_emit, alerts_evaluate, segments_refresh
from csplatform.customers.models import Account
from csplatform.rules.metrics import metrics_compute
from csplatform.tenancy.models import Tenant
from health.services import health_score
from lifecycle.services import lifecycle_advance
from playbooks.services import playbooks_enroll

CHUNK_SIZE = 2000


def recompute_accounts(*, tenant, account_ids):
    """Run every step over these accounts of one tenant. Safe to run twice."""
    started_at = timezone.now()
    metrics_compute(tenant=tenant, account_ids=account_ids)
    colour_changed = set(health_score(tenant=tenant, account_ids=account_ids))
    moved = set(lifecycle_advance(tenant=tenant, account_ids=account_ids))
    if moved:
        colour_changed |= set(health_score(tenant=tenant, account_ids=list(moved)))
    segment_changes = segments_refresh(tenant=tenant, account_ids=account_ids)
    alerts = alerts_evaluate(tenant=tenant, account_ids=account_ids)
    alert_webhooks_emit(tenant=tenant, opened=alerts.opened, resolved=alerts.resolved)
    account_changes_emit(tenant=tenant, moved_ids=moved, colour_changed_ids=colour_changed, since=started_at)
    playbooks_enroll(
        tenant=tenant,
        account_ids=account_ids,
        stage_changes=moved,
        health_changes=colour_changed,
        segment_changes=segment_changes,
    )
    return {"accounts": len(account_ids), "moved": len(moved)}


def recompute_dirty(*, tenant, chunk_size=CHUNK_SIZE):
    """Process the tenant's dirty accounts chunk by chunk, each account at most once; returns counts.

    1. Note the time, then read the next chunk of dirty accounts in
       (dirty_at, id) order after the last one read, so each read is an index
       range scan however many chunks came before.
    2. Recompute those not done already in this run (an account marked
       again meanwhile comes round again with its newer dirty_at).
    3. Clear dirty_at only where it is not newer than the noted time, so an
       event that arrived during the run keeps its account dirty for the next.
    """
    totals = {"accounts": 0, "moved": 0}
    seen = set()
    dirty = Account.objects.for_tenant(tenant).dirty().order_by("dirty_at", "pk")
    after = Q()
    while True:
        read_at = timezone.now()
        rows = list(dirty.filter(after).values_list("dirty_at", "pk")[:chunk_size])
        if not rows:
            return totals
        last_dirty_at, last_pk = rows[-1]
        after = Q(dirty_at__gt=last_dirty_at) | Q(dirty_at=last_dirty_at, pk__gt=last_pk)
        ids = [pk for _, pk in rows if pk not in seen]
        if not ids:
            continue
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
