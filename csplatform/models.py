from django.db import models
from django.utils import timezone

from csplatform.tenancy.models import TenantModel, tenant_key


class PassStatus(models.TextChoices):
    RUNNING = "running", "Running"
    COMPLETE = "complete", "Complete"
    FAILED = "failed", "Failed: its accounts stay marked for the next pass"
    INCOMPLETE = "incomplete", "Incomplete: a helper stopped reporting; its chunk stays marked"


class PipelinePass(TenantModel):
    """One pass of the pipeline over a tenant's marked accounts, shared by every thread and worker process
    that takes part in it (csplatform/pipeline.py).

    Each taker moves `last_account_id` past the chunk it takes with a
    conditional update, so a chunk goes to exactly one of them wherever they
    run. The pass closes when a taker finds nothing left after it; the
    process that opened it waits for `chunks_done` to reach `chunks_taken`,
    so the tenant's next pass cannot start while an account is still being
    recomputed. When it ends it is closed and stamped `ended_at`, and kept
    among the tenant's PASSES_KEPT latest, which show how fresh the tenant's
    results are (pipeline.pipeline_freshness).
    """

    tenant = tenant_key(db_index=True)
    chunk_size = models.PositiveIntegerField()
    last_account_id = models.BigIntegerField(default=0)
    closed = models.BooleanField(default=False)
    failed = models.BooleanField(default=False)
    chunks_taken = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    accounts = models.PositiveIntegerField(default=0)
    moved = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    @property
    def status(self):
        """Complete when every chunk taken was recomputed: it neither failed nor gave up on a silent helper."""
        if self.ended_at is None:
            return PassStatus.RUNNING
        if self.failed:
            return PassStatus.FAILED
        return PassStatus.COMPLETE if self.chunks_done == self.chunks_taken else PassStatus.INCOMPLETE

    @property
    def seconds(self):
        return None if self.ended_at is None else (self.ended_at - self.opened_at).total_seconds()

    def __str__(self):
        return f"pipeline pass {self.pk}: {self.chunks_done} of {self.chunks_taken} chunks done"
