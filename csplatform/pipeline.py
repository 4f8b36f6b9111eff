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

A pass of several chunks runs them in CSP_PIPELINE_THREADS threads, each on
its own connection: about half of a chunk's time is spent waiting for the
database, and another thread's Python work fills it.
"""

import threading

from django.conf import settings
from django.db import connection
from django.utils import timezone

from alerts.account_events import account_changes_emit
from alerts.services import alert_webhooks_emit, alerts_evaluate, segments_refresh
from csplatform.customers.models import Account, DirtyAccount
from csplatform.customers.services import dirty_marks_clear, dirty_marks_set
from csplatform.rules.metrics import metrics_compute
from csplatform.tenancy.models import Tenant
from csplatform.tenancy.rls import tenant_context
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


class DirtyChunks:
    """The tenant's marked accounts in chunks of ascending ids, each handed out once, to one or more threads.

    Each read starts after the last id handed out, so it is a range scan of
    the (tenant, account) index however many chunks came before, and the
    moment before the read is kept with the chunk: marks newer than it stay.
    """

    def __init__(self, tenant, chunk_size):
        self.marked = DirtyAccount.objects.for_tenant(tenant).order_by("account_id").values_list("account_id", flat=True)
        self.chunk_size = chunk_size
        self.last_id = 0
        self.stopped = False
        self.lock = threading.Lock()
        self.totals = {"accounts": 0, "moved": 0}

    def more_than_one(self):
        return self.marked[self.chunk_size : self.chunk_size + 1].exists()

    def take(self):
        """`(read_at, ids)` of the next chunk, or None when none is left or a thread failed."""
        with self.lock:
            if self.stopped:
                return None
            read_at = timezone.now()
            ids = list(self.marked.filter(account_id__gt=self.last_id)[: self.chunk_size])
            if not ids:
                return None
            self.last_id = ids[-1]
            return read_at, ids

    def add(self, result):
        with self.lock:
            for key in self.totals:
                self.totals[key] += result[key]


def _drain(tenant, chunks):
    """Recompute chunks until none is left, clearing each chunk's marks not newer than its read."""
    while chunk := chunks.take():
        read_at, ids = chunk
        chunks.add(recompute_accounts(tenant=tenant, account_ids=ids))
        dirty_marks_clear(tenant=tenant, account_ids=ids, read_at=read_at)


def _drain_in_thread(tenant, chunks, errors):
    try:
        with tenant_context(tenant):
            _drain(tenant, chunks)
    except BaseException as error:
        chunks.stopped = True
        errors.append(error)
    finally:
        connection.close()


def recompute_dirty(*, tenant, chunk_size=CHUNK_SIZE, threads=None):
    """Recompute the tenant's marked accounts chunk by chunk, each account at most once; returns counts.

    An account changed during the pass keeps its mark for the next one. With
    more than one chunk to do, `threads` (CSP_PIPELINE_THREADS when None)
    threads take them in turn; they see only committed rows, as a worker
    does. The first error stops the others from taking more chunks and is
    raised once they finish.
    """
    threads = settings.CSP_PIPELINE_THREADS if threads is None else threads
    chunks = DirtyChunks(tenant, chunk_size)
    if threads <= 1 or not chunks.more_than_one():
        _drain(tenant, chunks)
        return chunks.totals
    errors = []
    workers = [threading.Thread(target=_drain_in_thread, args=(tenant, chunks, errors)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return chunks.totals


def mark_all_dirty(*, tenant):
    """The periodic full sweep: time alone changes days-in-stage and date windows."""
    return dirty_marks_set(tenant=tenant, accounts=Account.objects.for_tenant(tenant))


def tenants_with_dirty_accounts():
    return list(
        Tenant.objects.filter(pk__in=DirtyAccount.objects.dangerously_all_tenants().values("tenant_id")).values_list(
            "pk", flat=True
        )
    )
