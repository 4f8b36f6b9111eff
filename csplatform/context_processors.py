"""Counts beside the main navigation: what a member should look at next.

The counts are lazy, so a page that does not draw the navigation pays no
query; each is bounded, so a tenant with 100k open alerts costs the same.
"""

import datetime as dt

from django.utils.functional import SimpleLazyObject

from alerts.models import Alert, AlertStatus
from csplatform.tenancy.models import Role
from csplatform.tenancy.timezones import day_start, tenant_today
from playbooks.models import Task

# Shown as "99+" beyond this.
COUNT_CAP = 99


def _bounded(queryset):
    count = queryset.order_by()[: COUNT_CAP + 1].count()
    return f"{COUNT_CAP}+" if count > COUNT_CAP else count


def _counts(request):
    tenant, user = request.tenant, request.user
    alerts = Alert.objects.for_tenant(tenant).filter(status=AlertStatus.OPEN)
    # The same scope as the inbox opens with: a CSM's own accounts, everything for the others.
    if request.membership.role == Role.CSM:
        alerts = alerts.filter(account__owner=user)
    due_by = day_start(tenant, tenant_today(tenant) + dt.timedelta(days=1))
    tasks = Task.objects.for_tenant(tenant).filter(owner=user, completed_at__isnull=True, due_at__lt=due_by)
    return {"open_alerts": _bounded(alerts), "tasks_due": _bounded(tasks)}


def nav_counts(request):
    if getattr(request, "tenant", None) is None or getattr(request, "membership", None) is None:
        return {}
    return {"nav_counts": SimpleLazyObject(lambda: _counts(request))}
