from celery import shared_task
from django.db import OperationalError

from csplatform.tenancy.models import Tenant
from csplatform.tenancy.rls import tenant_context

from .runner import steps_run_due
from .services import playbooks_enroll_dates

# A batch costs about fifteen statements whatever its size; 500 steps send in about a second.
BATCH_SIZE = 500
MAX_BATCHES = 10


@shared_task(
    name="playbooks.run_due", autoretry_for=(OperationalError,), retry_backoff=True, retry_jitter=True, max_retries=5
)
def run_due_task():
    """Every minute and after enrolment: execute due steps in batches until none is left (bounded).

    The runner sets row-level security itself: claims across tenants, each step in its tenant.
    """
    total = 0
    for _ in range(MAX_BATCHES):
        executed = steps_run_due(limit=BATCH_SIZE)
        total += executed
        if executed < BATCH_SIZE:
            break
    return total


@shared_task(name="playbooks.enroll_dates")
def enroll_dates_task():
    """Date-relative triggers ("trial ends in 3 days"), per tenant."""
    for tenant in Tenant.objects.all():
        with tenant_context(tenant):
            playbooks_enroll_dates(tenant=tenant)
