"""The notification outbox: in-app, email and Slack messages about alerts, endpoint failures, and the tasks and
notes teammates address to a member.

Rows are written in the transaction that caused them, with an idempotency
key per alert, channel and recipient, and sent by a worker after commit.
Sending claims rows with SKIP LOCKED and a lease, like webhook deliveries; a
failed send is retried with backoff by the beat sweep. Each email carries a
Message-ID made from its idempotency key, so a resend after a worker died
mid-send is recognisable as the same message.
"""

import datetime as dt
import json
import logging
from http.client import HTTPException

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.text import Truncator

from csplatform.tenancy.links import page_url
from csplatform.tenancy.models import Membership
from csplatform.tenancy.rls import dangerously_bypass_rls, tenant_context

from . import http
from .models import Channel, DeliveryStatus, Notification

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 60
CLAIM_LEASE = dt.timedelta(minutes=5)
# How much of a note its notification's subject quotes.
NOTE_EXCERPT_LENGTH = 120


def _enqueue(notification_ids):
    from .tasks import send_notifications_task

    if not notification_ids:
        return
    try:
        send_notifications_task.apply_async(args=[list(notification_ids)], expires=600)
    except Exception:
        # The rows are committed; the beat sweep sends them when the broker is back.
        logger.warning("Could not enqueue notifications %s; the sweep will send them", notification_ids, exc_info=True)


def notifications_enqueue(*, tenant, notifications):
    """Store unsaved Notification rows (skipping keys already stored) and send them after commit.

    In-app notifications are delivered by being stored. Returns the ids of
    the rows that are waiting to be sent.
    """
    if not notifications:
        return []
    now = timezone.now()
    for notification in notifications:
        if notification.channel == Channel.IN_APP:
            notification.status, notification.sent_at = DeliveryStatus.DELIVERED, now
        else:
            notification.next_attempt_at = notification.next_attempt_at or now
    Notification.objects.for_tenant(tenant).bulk_create(notifications, ignore_conflicts=True)
    pending = list(
        Notification.objects.for_tenant(tenant)
        .filter(idempotency_key__in=[n.idempotency_key for n in notifications], status=DeliveryStatus.PENDING)
        .values_list("pk", flat=True)
    )
    transaction.on_commit(lambda: _enqueue(pending))
    return pending


def in_app_notification(*, tenant, user, subject, text, key, account=None):
    return Notification(
        tenant=tenant,
        user=user,
        account=account,
        channel=Channel.IN_APP,
        recipient=user.email,
        subject=subject[:300],
        text=text,
        idempotency_key=key[:300],
    )


def _told_email_text(tenant, membership, text, account):
    """What a teammate addressed to a member, as the email of it says: the text, the account's page, and how to
    stop these emails."""
    parts = [text]
    if account is not None:
        parts.append(f"{account.name}: {page_url('account-detail', tenant, account.pk)}")
    parts.append(
        f"You get this email as a teammate at {tenant.name} addressed this to you; it is among your notifications "
        f"in the app too. Choose which emails you get: {page_url('settings-member-hours', tenant, membership.pk)}"
    )
    return "\n\n".join(parts)


def _tell(tenant, users, subject, text, key_of, account, by_email):
    """Tell each of `users` in the app, once per `key_of(user)`; by email too those who asked for it."""
    subject = " ".join(subject.split())
    notifications = [
        in_app_notification(tenant=tenant, user=user, subject=subject, text=text, key=key_of(user), account=account)
        for user in users
    ]
    if by_email and users:
        wanting = Membership.objects.for_tenant(tenant).filter(
            user__in=users, user__is_active=True, email_when_told=True
        )
        notifications += [
            Notification(
                tenant=tenant,
                user=membership.user,
                account=account,
                channel=Channel.EMAIL,
                recipient=membership.user.email,
                subject=subject[:300],
                text=_told_email_text(tenant, membership, text, account),
                idempotency_key=f"{key_of(membership.user)}:email"[:300],
            )
            for membership in wanting.select_related("user")
        ]
    notifications_enqueue(tenant=tenant, notifications=notifications)


def member_tell(*, tenant, user, subject, text, key, account=None):
    """Tell a member something, once per `key`: in the app (their notifications page), and by email if they asked
    for what teammates address to them; `account` is what it is about, which following the notification opens."""
    _tell(tenant, [user], subject, text, lambda _: key, account, by_email=True)


def note_tell(*, tenant, note, users, by_email=True):
    """Tell each of `users` of a note on an account, once per note and member, as `member_tell` does; never its
    author. Without `by_email`, in the app only."""
    excerpt = Truncator(" ".join(note.body.split())).chars(NOTE_EXCERPT_LENGTH)
    subject = f'{note.author or "Someone"} wrote on {note.account.name}: "{excerpt}"'
    users = [user for user in users if user != note.author]
    _tell(tenant, users, subject, note.body, lambda user: f"note:{note.pk}:user:{user.pk}", note.account, by_email)


def member_notifications(tenant, user):
    """The in-app notifications addressed to `user` in the tenant, newest first: their list in the app."""
    return Notification.objects.for_tenant(tenant).filter(user=user, channel=Channel.IN_APP)


def notifications_mark_read(*, tenant, user, notification_ids=None):
    """Mark the member's unread in-app notifications read, only those of `notification_ids` when given.

    Returns how many were unread. A notification read once keeps the time it was first read.
    """
    unread = member_notifications(tenant, user).filter(read_at__isnull=True)
    if notification_ids is not None:
        unread = unread.filter(pk__in=list(notification_ids))
    return unread.update(read_at=timezone.now())


@transaction.atomic
def _claim(notifications, now, limit):
    due = list(
        notifications.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .select_for_update(skip_locked=True)
        .order_by("next_attempt_at", "pk")[:limit]
    )
    if due:
        Notification.objects.dangerously_all_tenants().filter(pk__in=[n.pk for n in due]).update(
            attempts=F("attempts") + 1, next_attempt_at=now + CLAIM_LEASE
        )
        for notification in due:
            notification.attempts += 1
    return due


def notifications_send_due(*, now=None, limit=100, notification_ids=None):
    """Send due email and Slack notifications (of every tenant, or only these ids); returns how many were tried."""
    now = now or timezone.now()
    notifications = Notification.objects.dangerously_all_tenants()
    if notification_ids is not None:
        notifications = notifications.filter(pk__in=notification_ids)
    # The claim spans tenants; each send is recorded in its own tenant's context.
    with dangerously_bypass_rls():
        claimed = _claim(notifications, now, limit)
    for notification in claimed:
        with tenant_context(notification.tenant_id):
            error = _send(notification)
            _record(notification, error, now)
    return len(claimed)


def _send(notification):
    """Send one notification; the error text, or "" when it was sent."""
    try:
        if notification.channel == Channel.EMAIL:
            EmailMessage(
                subject=notification.subject,
                body=notification.text,
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=[notification.recipient],
                headers={"Message-ID": f"<{notification.idempotency_key.replace(':', '.')}@csplatform>"},
            ).send()
            return ""
        body = json.dumps({"text": f"*{notification.subject}*\n{notification.text}"}).encode()
        status_code, snippet = http.post(notification.recipient, body, {"Content-Type": "application/json"})
    except http.UnsafeTarget as exc:
        return str(exc)
    except (OSError, HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    return "" if 200 <= status_code < 300 else f"HTTP {status_code}: {snippet}"


def _record(notification, error, now):
    rows = Notification.objects.for_tenant(notification.tenant_id).filter(pk=notification.pk)
    if not error:
        rows.update(status=DeliveryStatus.DELIVERED, sent_at=timezone.now(), last_error="", next_attempt_at=None)
        return
    finished = notification.attempts >= MAX_ATTEMPTS
    delay = dt.timedelta(seconds=BACKOFF_BASE_SECONDS * 2 ** (notification.attempts - 1))
    rows.update(
        status=DeliveryStatus.FAILED if finished else DeliveryStatus.PENDING,
        last_error=error[:2000],
        next_attempt_at=None if finished else now + delay,
    )
    logger.warning("Notification %s via %s failed: %s", notification.pk, notification.channel, error)
