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
database, and another thread's Python work fills it. Other worker processes,
on this machine or another, can take chunks of the same pass too
(CSP_PIPELINE_HELPERS, tasks.recompute_pass_help_task): one tenant's pass
then spreads over the workers that Compose scales out.

Each tenant keeps its latest passes; `pipeline_freshness` reads them with the
marks to tell how far the results are behind the data (the API's
/api/v1/pipeline/, the settings page "Data freshness", `manage.py
pipeline_status`).
"""

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Min
from django.utils import timezone

from alerts.account_events import account_changes_emit
from alerts.services import alert_webhooks_emit, alerts_evaluate, segments_refresh
from csplatform.customers.models import Account, DirtyAccount
from csplatform.customers.services import dirty_marks_clear, dirty_marks_set
from csplatform.models import PassStatus, PipelinePass
from csplatform.rules.metrics import metrics_compute
from csplatform.rules.models import AccountMetrics, ContactMetrics
from csplatform.sql import analyze_where_tenant_unseen, keyed_plans
from csplatform.tenancy.models import Tenant
from csplatform.tenancy.rls import tenant_context
from health.models import HealthScore, HealthSnapshot
from health.services import health_score
from lifecycle.models import AccountStage
from lifecycle.services import lifecycle_advance
from playbooks.services import playbooks_enroll

logger = logging.getLogger(__name__)

# A chunk takes seconds; a helper silent this long has died, and its chunk's marks stay for the next pass.
HELPER_STALL_SECONDS = 120
HELPER_POLL_SECONDS = 0.05
# A pass that has not ended this long after it opened was opened by a process that died.
STALE_PASS_AGE = dt.timedelta(days=1)
# Ended passes kept per tenant, newest first: its pipeline's recent history.
PASSES_KEPT = 20
# The tables a pass fills with a row per account or contact, which its later chunks read back by key.
FILLED_BY_A_PASS = (AccountMetrics, ContactMetrics, AccountStage, HealthScore, HealthSnapshot)


class PassFailed(Exception):
    """A chunk of the pass failed in another process; that process logged the error."""


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


def _this_pass(pipeline_pass):
    """The pass's own row, as a queryset to update: every taker changes it only by conditional updates."""
    return PipelinePass.objects.for_tenant(pipeline_pass.tenant_id).filter(pk=pipeline_pass.pk)


def _chunk_take(pipeline_pass, marked):
    """`(read_at, ids)` of the pass's next chunk, or None once the pass is closed or failed.

    The chunk is the marked accounts after the last one taken, a range scan of
    the (tenant, account) index however many chunks came before; it is this
    taker's only if the pass's cursor has not moved meanwhile. The taker that
    finds nothing left closes the pass. The moment before the read is kept
    with the chunk: marks newer than it stay for the next pass.
    """
    passes = _this_pass(pipeline_pass).filter(closed=False, failed=False)
    while True:
        last_id = passes.values_list("last_account_id", flat=True).first()
        if last_id is None:
            return None
        read_at = timezone.now()
        ids = list(marked.filter(account_id__gt=last_id)[: pipeline_pass.chunk_size])
        cursor = passes.filter(last_account_id=last_id)
        if not ids:
            if cursor.update(closed=True):
                return None
        elif cursor.update(last_account_id=ids[-1], chunks_taken=F("chunks_taken") + 1):
            return read_at, ids


def _chunk_done(pipeline_pass, result):
    _this_pass(pipeline_pass).update(
        chunks_done=F("chunks_done") + 1,
        accounts=F("accounts") + result["accounts"],
        moved=F("moved") + result["moved"],
    )


def _chunk_failed(pipeline_pass):
    """Count the chunk as done, so that nobody waits for it, and fail the pass, so that nobody takes another."""
    _this_pass(pipeline_pass).update(chunks_done=F("chunks_done") + 1, failed=True)


def _pass_end(pipeline_pass):
    """Close the pass, so that a helper arriving late takes nothing, stamp its end, and keep the tenant's
    PASSES_KEPT latest ended passes."""
    _this_pass(pipeline_pass).update(closed=True, ended_at=timezone.now())
    ended = PipelinePass.objects.for_tenant(pipeline_pass.tenant_id).filter(ended_at__isnull=False)
    kept = list(ended.order_by("-opened_at", "-pk").values_list("pk", flat=True)[:PASSES_KEPT])
    ended.exclude(pk__in=kept).delete()


def _drain(tenant, pipeline_pass):
    """Recompute the pass's chunks until none is left, clearing each chunk's marks not newer than its read;
    returns how many chunks were done here.

    A chunk that fails fails the pass, so that no taker starts another, and
    keeps its marks for the next pass. The chunks' queries are planned as
    reads by key (`keyed_plans`), which they are.
    Before its second chunk a taker has the tables a pass fills analysed if
    their statistics have not seen the tenant yet, as on its first pass.
    """
    marked = DirtyAccount.objects.for_tenant(tenant).order_by("account_id").values_list("account_id", flat=True)
    done = 0
    with keyed_plans():
        while chunk := _chunk_take(pipeline_pass, marked):
            read_at, ids = chunk
            try:
                if done == 1:
                    analyze_where_tenant_unseen(tenant.pk, FILLED_BY_A_PASS)
                result = recompute_accounts(tenant=tenant, account_ids=ids)
                dirty_marks_clear(tenant=tenant, account_ids=ids, read_at=read_at)
            except BaseException:
                _chunk_failed(pipeline_pass)
                raise
            _chunk_done(pipeline_pass, result)
            done += 1
    return done


def _drain_in_thread(tenant, pipeline_pass, errors):
    try:
        with tenant_context(tenant):
            _drain(tenant, pipeline_pass)
    except BaseException as error:
        errors.append(error)
    finally:
        connection.close()


def _drain_in_threads(tenant, pipeline_pass, threads):
    """Drain the pass in `threads` threads, each on its own connection; the first error is raised once all end."""
    errors = []
    workers = [threading.Thread(target=_drain_in_thread, args=(tenant, pipeline_pass, errors)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]


def _wait_for_helpers(pipeline_pass):
    """Wait until every chunk taken is done, or until none has been done for HELPER_STALL_SECONDS.

    A helper killed mid-chunk never reports it; its accounts keep their marks,
    so giving up on it loses nothing, and the next pass recomputes them.
    Returns the pass as it ended.
    """
    done, waited_since = None, time.monotonic()
    while (ended := _this_pass(pipeline_pass).first()) is not None and ended.chunks_done < ended.chunks_taken:
        if ended.chunks_done != done:
            done, waited_since = ended.chunks_done, time.monotonic()
        elif time.monotonic() - waited_since > HELPER_STALL_SECONDS:
            logger.warning("Pipeline pass %s of tenant %s: a helper went silent", ended.pk, ended.tenant_id)
            break
        time.sleep(HELPER_POLL_SECONDS)
    return ended or pipeline_pass


def recompute_dirty(*, tenant, chunk_size=None, threads=None, ask_for_helpers=None):
    """Recompute the tenant's marked accounts chunk by chunk, each account at most once; returns counts.

    1. Open a pass (csplatform.models.PipelinePass). With more than one chunk
       to do, `ask_for_helpers(pass_id)` may ask other worker processes to
       take part (`pass_help` below).
    2. Take chunks of `chunk_size` accounts (CSP_PIPELINE_CHUNK_SIZE when
       None) until none is left, in `threads` threads (CSP_PIPELINE_THREADS
       when None), each on its own connection; they see only committed rows,
       as a worker does.
    3. Wait for the chunks that helpers took, then end the pass.
    The first error fails the pass, which stops every taker from starting
    another chunk, and is raised once the chunks in flight are done; an
    error in a helper raises PassFailed here. An account changed during the
    pass keeps its mark for the next one.
    """
    chunk_size = chunk_size or settings.CSP_PIPELINE_CHUNK_SIZE
    threads = settings.CSP_PIPELINE_THREADS if threads is None else threads
    several_chunks = DirtyAccount.objects.for_tenant(tenant)[chunk_size : chunk_size + 1].exists()
    passes = PipelinePass.objects.for_tenant(tenant)
    passes.filter(ended_at__isnull=True, opened_at__lt=timezone.now() - STALE_PASS_AGE).delete()
    pipeline_pass = passes.create(tenant=tenant, chunk_size=chunk_size)
    try:
        if several_chunks and ask_for_helpers is not None:
            ask_for_helpers(pipeline_pass.pk)
        try:
            if threads <= 1 or not several_chunks:
                _drain(tenant, pipeline_pass)
            else:
                _drain_in_threads(tenant, pipeline_pass, threads)
        except BaseException:
            # Also when no chunk failed (a read of the marks, a thread): no helper may start another.
            _this_pass(pipeline_pass).update(failed=True)
            _wait_for_helpers(pipeline_pass)
            raise
        ended = _wait_for_helpers(pipeline_pass)
    finally:
        _pass_end(pipeline_pass)
    if ended.failed:
        raise PassFailed(f"A chunk of pipeline pass {ended.pk} failed in a helper; its accounts stay marked.")
    return {"accounts": ended.accounts, "moved": ended.moved}


@dataclass(frozen=True)
class Freshness:
    """How far a tenant's results (metrics, health, stages, segments, alerts) are behind its data."""

    checked_at: dt.datetime
    # Accounts changed since they were last recomputed.
    waiting_accounts: int
    # Every change committed before this moment is in the results.
    current_as_of: dt.datetime
    running: PipelinePass | None
    # Ended passes, the latest opened first.
    recent_passes: list

    @property
    def behind_seconds(self):
        """How old the oldest change still waiting may be."""
        return max(0.0, (self.checked_at - self.current_as_of).total_seconds())


def pipeline_freshness(*, tenant):
    """The tenant's Freshness, in two queries.

    With no account marked every change is in. Otherwise, of two moments
    before which every change is in, the later:
    - the oldest mark's `waiting_since`: a change still waiting set or found
      its account's mark, so it is no older than the mark;
    - the opening of the latest complete pass, which took every account
      marked by then and cleared no mark it had not recomputed. Under steady
      ingest, where marks are set again as soon as a pass has read them and
      so stay, this is the tighter one; after a quiet spell, the first.
    """
    checked_at = timezone.now()
    marks = DirtyAccount.objects.for_tenant(tenant).aggregate(waiting=Count("pk"), since=Min("waiting_since"))
    passes = list(PipelinePass.objects.for_tenant(tenant).order_by("-opened_at", "-pk"))
    ended = [each for each in passes if each.ended_at is not None]
    if not marks["waiting"]:
        current_as_of = checked_at
    else:
        complete = (each.opened_at for each in ended if each.status == PassStatus.COMPLETE)
        current_as_of = max(marks["since"], next(complete, marks["since"]))
    return Freshness(
        checked_at=checked_at,
        waiting_accounts=marks["waiting"],
        current_as_of=current_as_of,
        running=next((each for each in passes if each.ended_at is None), None),
        recent_passes=ended,
    )


def pass_help(*, tenant, pass_id):
    """Take part in a pass another process opened, until it has no chunk left; returns the chunks done here.

    A helper that arrives after the pass ended finds nothing to do.
    """
    pipeline_pass = PipelinePass.objects.for_tenant(tenant).filter(pk=pass_id).first()
    chunks = 0 if pipeline_pass is None else _drain(tenant, pipeline_pass)
    logger.info("Helped pipeline pass %s of tenant %s with %s chunks", pass_id, tenant.pk, chunks)
    return chunks


def mark_all_dirty(*, tenant):
    """The periodic full sweep: time alone changes days-in-stage and date windows."""
    return dirty_marks_set(tenant=tenant, accounts=Account.objects.for_tenant(tenant))


def tenants_with_dirty_accounts():
    return list(
        Tenant.objects.filter(pk__in=DirtyAccount.objects.dangerously_all_tenants().values("tenant_id")).values_list(
            "pk", flat=True
        )
    )
