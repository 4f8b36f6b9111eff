"""The recompute pipeline: one place that says what happens after data changes.

    ingest / edits ─▶ DirtyAccount mark set ─▶ tasks.schedule_recompute(tenant)
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
    meanwhile (its mark is newer than the moment the chunk was read).
"""

from django.utils import timezone

from alerts.account_events import account_changes_emit
from alerts.services import alert_webhooks_emit, alerts_evaluate, segments_refresh
from csplatform.customers.models import Account, DirtyAccount
from csplatform.customers.services import dirty_marks_clear, dirty_marks_set
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

    1. Note the time, then read the next chunk of marked account ids after
       the last one read, so each read is a range scan of the (tenant,
       account) index however many chunks came before.
    2. Recompute those accounts.
    3. Clear the marks not newer than the noted time, so an event that
       arrived during the run keeps its account dirty for the next run.
    """
    totals = {"accounts": 0, "moved": 0}
    marked = DirtyAccount.objects.for_tenant(tenant).order_by("account_id").values_list("account_id", flat=True)
    last_id = 0
    while True:
        read_at = timezone.now()
        ids = list(marked.filter(account_id__gt=last_id)[:chunk_size])
        if not ids:
            return totals
        last_id = ids[-1]
        result = recompute_accounts(tenant=tenant, account_ids=ids)
        dirty_marks_clear(tenant=tenant, account_ids=ids, read_at=read_at)
        for key in totals:
            totals[key] += result[key]


def mark_all_dirty(*, tenant):
    """The periodic full sweep: time alone changes days-in-stage and date windows."""
    return dirty_marks_set(tenant=tenant, accounts=Account.objects.for_tenant(tenant))


def tenants_with_dirty_accounts():
    return list(
        Tenant.objects.filter(pk__in=DirtyAccount.objects.dangerously_all_tenants().values("tenant_id")).values_list(
            "pk", flat=True
        )
    )
