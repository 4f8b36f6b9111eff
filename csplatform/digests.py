"""The daily digest: one email to each member, as their working day starts, of what needs them on their accounts.

It lists the open alerts on the accounts they own (except those snoozed),
their tasks overdue or due that day, their accounts renewing within 30 days,
each with its page, and what teammates addressed to them in the app that
they have not read (notes written for them, tasks given to them), each with
its notification. A member with none of these gets no email. It is written
to the notification outbox under a key of the member and their day, so a day
has one digest however often the sweep runs, and it is sent and retried like
an alert's email. Members choose it on their working-hours page; viewers, who own
nothing, get none.
"""

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from alerts.models import Alert, AlertStatus, Channel, Notification
from alerts.notifications import member_notifications, notifications_enqueue
from csplatform.customers.models import Account
from csplatform.tenancy.links import page_url
from csplatform.tenancy.models import Membership, Role
from csplatform.tenancy.rls import dangerously_bypass_rls, tenant_context
from csplatform.tenancy.timezones import local_day_start
from playbooks.models import Task
from playbooks.scheduling import working_hours

DIGEST_ROLES = (Role.ADMIN, Role.CSM)
# Each list names this many; its heading counts them all.
LISTED = 10
RENEWAL_DAYS = 30
# The sweep runs every few minutes; a member's digest goes out in the first hour of their day, or not that day.
SEND_WINDOW = dt.timedelta(hours=1)


@dataclass
class Digest:
    subject: str
    text: str


def digest_key(membership, day):
    return f"digest:{membership.pk}:{day.isoformat()}"


def digest_day(tenant, membership, now):
    """The member's local date if `now` falls in the first hour of one of their working days, else None."""
    zone, (start_hour, _), workdays = working_hours(tenant, membership)
    local = now.astimezone(zone)
    start = dt.datetime.combine(local.date(), dt.time(start_hour), tzinfo=zone)
    if local.weekday() in workdays and start <= local < start + SEND_WINDOW:
        return local.date()
    return None


def counted(number, one, many):
    return f"{number} {one if number == 1 else many}"


def section(heading, rows, total, more_url):
    """A heading with its count, one line per row (at most LISTED), and where to see the rest."""
    lines = [f"{heading} ({total})", *(f"- {row}" for row in rows)]
    if total > len(rows):
        lines.append(f"  and {total - len(rows)} more: {more_url}")
    return "\n".join(lines)


def digest_build(*, tenant, membership, day):
    """The member's digest for their local `day`, or None when there is nothing for them to act on."""
    user, (zone, _, _) = membership.user, working_hours(tenant, membership)
    end_of_day = local_day_start(day + dt.timedelta(days=1), zone)
    alerts = (
        Alert.objects.for_tenant(tenant)
        .filter(account__owner=user, status=AlertStatus.OPEN)
        .awake(timezone.now())
        .select_related("account")
        # The most severe first, so that a long list cut at LISTED leaves out the least pressing.
        .most_severe_first("-opened_at", "-id")
    )
    tasks = (
        Task.objects.for_tenant(tenant)
        .filter(owner=user, completed_at__isnull=True, due_at__lt=end_of_day)
        .select_related("account")
        .order_by("due_at", "id")
    )
    renewals = (
        Account.objects.for_tenant(tenant)
        .still_customers()
        .filter(owner=user, renewal_date__gte=day, renewal_date__lte=day + dt.timedelta(days=RENEWAL_DAYS))
        .order_by("renewal_date", "name", "id")
    )
    # Alerts are listed above whether or not a rule also told the member in the app.
    unread = member_notifications(tenant, user).filter(read_at__isnull=True, alert__isnull=True)
    counts = {
        "alerts": alerts.count(),
        "tasks": tasks.count(),
        "renewals": renewals.count(),
        "unread": unread.count(),
    }
    if not any(counts.values()):
        return None
    sections = []
    if counts["alerts"]:
        rows = [
            f"[{alert.get_severity_display()}] {alert.title}, opened {alert.opened_at.astimezone(zone):%b %-d}: "
            f"{page_url('account-detail', tenant, alert.account_id)}"
            for alert in alerts[:LISTED]
        ]
        inbox = page_url("alerts", tenant, query="?owner=mine&sort=-severity")
        sections.append(section("Open alerts on your accounts", rows, counts["alerts"], inbox))
    if counts["tasks"]:
        start_of_day = end_of_day - dt.timedelta(days=1)
        rows = [
            f"{'Overdue since ' if task.due_at < start_of_day else 'Due '}"
            f"{task.due_at.astimezone(zone):%b %-d %H:%M}: {task.title}"
            # Playbook tasks name their account already.
            + (f" ({task.account.name})" if task.account_id and task.account.name not in task.title else "")
            for task in tasks[:LISTED]
        ]
        sections.append(section("Your tasks due by today", rows, counts["tasks"], page_url("tasks", tenant)))
    if counts["renewals"]:
        rows = [
            f"{account.name} renews on {account.renewal_date:%b %-d} ({account.mrr:,.0f} {account.currency} MRR): "
            f"{page_url('account-detail', tenant, account.pk)}"
            for account in renewals[:LISTED]
        ]
        mine = page_url("portfolio", tenant, query=f"?scope=mine&renewal={RENEWAL_DAYS}&sort=renewal")
        sections.append(section(f"Your accounts renewing within {RENEWAL_DAYS} days", rows, counts["renewals"], mine))
    if counts["unread"]:
        rows = [
            f"{notification.subject}: {page_url('notification-open', tenant, notification.pk)}"
            for notification in unread[:LISTED]
        ]
        sections.append(
            section("Unread from your teammates", rows, counts["unread"], page_url("notifications", tenant))
        )
    summary = ", ".join(
        counted(counts[key], one, many)
        for key, one, many in (
            ("alerts", "open alert", "open alerts"),
            ("tasks", "task due", "tasks due"),
            ("renewals", "renewal", "renewals"),
            ("unread", "unread from teammates", "unread from teammates"),
        )
        if counts[key]
    )
    greeting = f"Hello {user}, here is your day at {tenant.name}, {day:%A, %B %-d}."
    footer = (
        "You get this email on your working days as they start. Change your working hours or turn it off: "
        f"{page_url('settings-member-hours', tenant, membership.pk)}"
    )
    return Digest(subject=f"{tenant.name}: {summary}", text="\n\n".join([greeting, *sections, footer]))


def digests_send_due(*, now=None):
    """Write today's digest of every member whose working day has just started and who has none yet.

    Spans tenants, as the other sweeps do; each tenant's digests are built in
    its own context. Returns how many were written.
    """
    now = now or timezone.now()
    with dangerously_bypass_rls():
        memberships = list(
            Membership.objects.dangerously_all_tenants()
            .filter(daily_digest=True, role__in=DIGEST_ROLES, user__is_active=True)
            .select_related("tenant", "user")
            .order_by("tenant_id", "id")
        )
    due = {}
    for membership in memberships:
        day = digest_day(membership.tenant, membership, now)
        if day is not None:
            due.setdefault(membership.tenant, []).append((membership, day))
    written = 0
    for tenant, members in due.items():
        with tenant_context(tenant):
            written += digests_write(tenant=tenant, members=members)
    return written


@transaction.atomic
def digests_write(*, tenant, members):
    """Build and store the digests of `members` [(membership, day)] not stored yet; returns how many were stored."""
    keys = {digest_key(membership, day) for membership, day in members}
    written = Notification.objects.for_tenant(tenant).filter(idempotency_key__in=keys)
    stored = set(written.values_list("idempotency_key", flat=True))
    rows = []
    for membership, day in members:
        key = digest_key(membership, day)
        digest = None if key in stored else digest_build(tenant=tenant, membership=membership, day=day)
        if digest is not None:
            rows.append(
                Notification(
                    tenant=tenant, channel=Channel.EMAIL, user=membership.user, recipient=membership.user.email,
                    subject=digest.subject[:300], text=digest.text, idempotency_key=key,
                )
            )
    return len(notifications_enqueue(tenant=tenant, notifications=rows))
