"""What the main navigation tells a member: counts of what to look at next, and whether a daily digest
comes to them (its link).

The counts are lazy, so a page that does not draw the navigation pays no
query; each is bounded, so a tenant with 100k open alerts costs the same.
"""

import datetime as dt

from django.db import connection
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from alerts.models import Alert, AlertStatus
from alerts.notifications import member_notifications
from csplatform.digests import DIGEST_ROLES
from csplatform.tenancy.models import Role
from csplatform.tenancy.timezones import local_day_start
from playbooks.models import Task

# Shown as "99+" beyond this.
COUNT_CAP = 99


def _bounded_counts(querysets):
    """{name: its queryset's row count, or "99+" beyond the cap}: every count in one query, read on every page."""
    selects, params = [], []
    for queryset in querysets.values():
        sql, query_params = queryset.order_by().values("pk")[: COUNT_CAP + 1].query.sql_with_params()
        selects.append(f"(SELECT COUNT(*) FROM ({sql}) AS capped)")
        params.extend(query_params)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(selects)}", params)
        counts = cursor.fetchone()
    return {name: f"{COUNT_CAP}+" if count > COUNT_CAP else count for name, count in zip(querysets, counts)}


def _counts(request):
    tenant, user = request.tenant, request.user
    alerts = Alert.objects.for_tenant(tenant).filter(status=AlertStatus.OPEN).awake(timezone.now())
    # The same scope as the inbox opens with: a CSM's own accounts, everything for the others.
    if request.membership.role == Role.CSM:
        alerts = alerts.filter(account__owner=user)
    # Due by the end of the reader's today, as the tasks page counts it.
    due_by = local_day_start(timezone.localdate() + dt.timedelta(days=1))
    tasks = Task.objects.for_tenant(tenant).filter(owner=user, completed_at__isnull=True, due_at__lt=due_by)
    unread = member_notifications(tenant, user).filter(read_at__isnull=True)
    return _bounded_counts({"open_alerts": alerts, "tasks_due": tasks, "unread_notifications": unread})


def nav_counts(request):
    if getattr(request, "tenant", None) is None or getattr(request, "membership", None) is None:
        return {}
    return {
        "nav_counts": SimpleLazyObject(lambda: _counts(request)),
        "receives_digest": request.membership.role in DIGEST_ROLES,
    }
