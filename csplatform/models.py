from django.db import models
from django.utils import timezone

from csplatform.tenancy.models import TenantModel, tenant_key


class PipelinePass(TenantModel):
    """One pass of the pipeline over a tenant's marked accounts, shared by every thread and worker process
    that takes part in it (csplatform/pipeline.py).

    Each taker moves `last_account_id` past the chunk it takes with a
    conditional update, so a chunk goes to exactly one of them wherever they
    run. The pass closes when a taker finds nothing left after it; the
    process that opened it waits for `chunks_done` to reach `chunks_taken`,
    so the tenant's next pass cannot start while an account is still being
    recomputed. Deleted when the pass ends.
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

    def __str__(self):
        return f"pipeline pass {self.pk}: {self.chunks_done} of {self.chunks_taken} chunks done"
