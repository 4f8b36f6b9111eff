"""Thin Celery tasks over alerts' services. Each is safe to run twice: sends are claimed first.

The delivery services set row-level security themselves: claims across tenants, each send in its tenant.
"""

from celery import shared_task
from django.db import OperationalError

from csplatform.tenancy.models import Tenant
from csplatform.tenancy.rls import tenant_context

from .models import Segment
from .notifications import notifications_send_due
from .services import segment_refresh_all
from .webhooks import webhook_deliver_due

BATCH_SIZE = 100
MAX_BATCHES = 20
RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": True, "retry_jitter": True, "max_retries": 5}


@shared_task(name="alerts.deliver_webhooks", **RETRY)
def deliver_webhooks_task(delivery_ids):
    """First attempt of freshly emitted deliveries, right after the emitting transaction commits."""
    return webhook_deliver_due(delivery_ids=delivery_ids, limit=len(delivery_ids))


@shared_task(name="alerts.webhooks_due", **RETRY)
def webhooks_due_task():
    """Every 30 s: retry the deliveries whose backoff has passed, in bounded batches."""
    total = 0
    for _ in range(MAX_BATCHES):
        attempted = webhook_deliver_due(limit=BATCH_SIZE)
        total += attempted
        if attempted < BATCH_SIZE:
            break
    return total


@shared_task(name="alerts.send_notifications", **RETRY)
def send_notifications_task(notification_ids):
    return notifications_send_due(notification_ids=notification_ids, limit=len(notification_ids))


@shared_task(name="alerts.notifications_due", **RETRY)
def notifications_due_task():
    """Every minute: send the notifications that failed before or were never picked up."""
    return notifications_send_due(limit=BATCH_SIZE * MAX_BATCHES)


@shared_task(name="alerts.refresh_segment", **RETRY)
def refresh_segment_task(tenant_id, segment_id):
    """Fill a new or changed segment's memberships over every account of the tenant."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return 0
    with tenant_context(tenant):
        segment = Segment.objects.for_tenant(tenant).filter(pk=segment_id).first()
        if segment is None:
            return 0
        return len(segment_refresh_all(tenant=tenant, segment=segment))
