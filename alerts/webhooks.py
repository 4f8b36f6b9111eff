"""Outbound webhooks: signed events to the tenant's endpoints, retried until they land.

Each event is POSTed as JSON:

    {"id": "<event uuid>", "type": "alert.opened", "created": "2025-01-31T09:00:00+00:00",
     "tenant": "<tenant slug>", "data": {...}}

with the headers

    CSP-Event-Id: <event uuid>
    CSP-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

How a receiver verifies a request (`verify_signature` below does steps 1-4):

1. Read the raw body bytes before parsing them.
2. Split CSP-Signature on "," into `t` and one or more `v1` values.
3. Refuse the request when `t` is more than 300 seconds away from your clock:
   an old signed request replayed later fails here.
4. Compute HMAC-SHA256 with the subscription secret over `t`, a dot and the
   raw body; compare it with each `v1` in constant time. No match: refuse.
5. Process each event id once. An id you have already processed is answered
   2xx and not processed again, never refused: a delivery is retried until it
   gets a 2xx, also when your answer was lost on the way back, and each retry
   is signed afresh (a new `t`) with the same id and body. A replay inside
   the 300 seconds meets the same check and changes nothing. Keep the ids
   for a day; the retries of one delivery span about an hour and a half.

Delivery: `webhook_emit` writes one WebhookDelivery per subscribed endpoint
(unique per idempotency key, so emitting twice delivers once) and asks a
worker to send it after commit. A failed attempt is retried with
exponential backoff and jitter; the due time lives in `next_attempt_at` and
a beat task claims due deliveries with SELECT ... FOR UPDATE SKIP LOCKED,
never in a long Celery countdown. After CSP_WEBHOOK_DISABLE_AFTER failures
in a row a subscription is disabled, and the tenant's admins are emailed
and the audit log records it.
"""

import datetime as dt
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
import uuid
from http.client import HTTPException

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from csplatform.tenancy.models import Membership, Role
from csplatform.tenancy.rls import dangerously_bypass_rls, tenant_context
from csplatform.tenancy.services import audit_record

from . import http
from .models import Channel, DeliveryStatus, Notification, WebhookDelivery, WebhookSubscription

logger = logging.getLogger(__name__)

# Each event type and when it is sent, as the settings page tells an admin choosing them.
EVENT_TYPES = {
    "account.stage_changed": "An account moved to another stage",
    "account.health_changed": "An account's health changed colour",
    "account.expansion_flagged": "A playbook flagged an expansion opportunity",
    "account.updated": "Someone, an integration or an import changed an account's owner or details",
    "contact.updated": "A contact was added, changed or removed",
    "alert.opened": "An alert opened",
    "alert.acknowledged": "Someone acknowledged an alert",
    "alert.resolved": "An alert closed",
    "playbook.step_completed": "A playbook's webhook step ran",
    "task.created": "A task was created, by a playbook or a member",
    "task.completed": "A task was done",
}
TEST_EVENT_TYPE = "webhook.test"
# Every type a delivery may carry: the subscribable ones and the test an admin sends.
DELIVERY_EVENT_TYPES = [*EVENT_TYPES, TEST_EVENT_TYPE]
SIGNATURE_HEADER = "CSP-Signature"
EVENT_ID_HEADER = "CSP-Event-Id"
DEFAULT_TOLERANCE = 300

MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 6 * 3600
# A claimed delivery whose worker died is due again after this long.
CLAIM_LEASE = dt.timedelta(minutes=5)


# Signing -------------------------------------------------------------------


class SignatureError(ValueError):
    """A webhook request that must be refused; the message says why."""


def _mac(secret, timestamp, body):
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret, body, timestamp):
    """The CSP-Signature header value for `body` (bytes) sent at `timestamp` (unix seconds)."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify_signature(secret, header, body, tolerance=DEFAULT_TOLERANCE, now=None):
    """Check a received webhook's timestamp and signature (steps 1-4 above); return the event (a dict).

    `body` is the raw request body (bytes or str), `now` the receiver's unix
    time (defaults to the clock). Raises SignatureError for a request to
    refuse. Whether the event's id was already processed (step 5) is the
    receiver's to check, against its own store.
    """
    body = body.encode() if isinstance(body, str) else body
    timestamp, candidates = None, []
    for item in (header or "").split(","):
        name, _, value = item.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError(f"The {SIGNATURE_HEADER} header must hold t=<unix time> and v1=<signature>.")
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"The signature is {abs(now - timestamp):.0f} s old; at most {tolerance} s is accepted.")
    expected = _mac(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("The signature does not match the body.")
    try:
        event = json.loads(body)
    except ValueError:
        event = None
    if not isinstance(event, dict) or "id" not in event:
        raise SignatureError("The body is not a webhook event.")
    return event


def event_envelope(delivery, tenant_slug):
    """The event a delivery sends, as a dict: its id, type, time, tenant and data."""
    return {
        "id": str(delivery.event_id),
        "type": delivery.event_type,
        "created": delivery.created_at.isoformat(),
        "tenant": tenant_slug,
        "data": delivery.payload,
    }


def event_body(delivery, tenant_slug):
    return json.dumps(event_envelope(delivery, tenant_slug), cls=DjangoJSONEncoder, separators=(",", ":")).encode()


# Subscriptions -------------------------------------------------------------


def generate_secret():
    return "whsec_" + secrets.token_urlsafe(32)


def subscription_snapshot(subscription):
    """The audited view of a subscription; never the secret."""
    return {
        "url": subscription.url,
        "description": subscription.description,
        "event_types": list(subscription.event_types),
        "active": subscription.active,
    }


def check_url(url):
    """A ValidationError on `url` saying why the platform will not send to it."""
    try:
        http.resolve_target(url)
    except http.UnsafeTarget as exc:
        raise ValidationError({"url": str(exc)}) from exc


def check_event_types(event_types):
    unknown = [name for name in event_types if name not in EVENT_TYPES]
    if unknown or not event_types:
        message = (
            f"Unknown event type(s): {', '.join(unknown)}." if unknown else "Choose at least one event type."
        )
        raise ValidationError({"event_types": f"{message} Choose from {', '.join(EVENT_TYPES)}."})
    return sorted(set(event_types))


@transaction.atomic
def webhook_subscription_create(*, tenant, actor, url, event_types, description="", active=True):
    """Add an endpoint; returns (subscription, secret). The secret is shown to the admin only now."""
    check_url(url)
    subscription = WebhookSubscription.objects.create(
        tenant=tenant,
        url=url,
        description=description,
        event_types=check_event_types(event_types),
        secret=generate_secret(),
        active=active,
    )
    audit_record(
        tenant=tenant, actor=actor, action="webhook.created", obj=subscription, after=subscription_snapshot(subscription)
    )
    return subscription, subscription.secret


@transaction.atomic
def webhook_subscription_update(*, tenant, subscription, actor, **changes):
    """Change an endpoint. Re-enabling a disabled one clears its failure count."""
    before = subscription_snapshot(subscription)
    if "url" in changes:
        check_url(changes["url"])
    if "event_types" in changes:
        changes["event_types"] = check_event_types(changes["event_types"])
    if changes.get("active") and not subscription.active:
        subscription.consecutive_failures, subscription.disabled_at = 0, None
    for name, value in changes.items():
        setattr(subscription, name, value)
    subscription.save()
    audit_record(
        tenant=tenant,
        actor=actor,
        action="webhook.updated",
        obj=subscription,
        before=before,
        after=subscription_snapshot(subscription),
    )
    return subscription


@transaction.atomic
def webhook_subscription_delete(*, tenant, subscription, actor):
    audit_record(
        tenant=tenant, actor=actor, action="webhook.deleted", obj=subscription, before=subscription_snapshot(subscription)
    )
    subscription.delete()


@transaction.atomic
def webhook_secret_rotate(*, tenant, subscription, actor):
    """Give the endpoint a new secret and return it; deliveries from now on are signed with it."""
    subscription.secret = generate_secret()
    subscription.save(update_fields=["secret", "updated_at"])
    audit_record(tenant=tenant, actor=actor, action="webhook.secret_rotated", obj=subscription)
    return subscription.secret


# Emitting ------------------------------------------------------------------


def _enqueue(delivery_ids):
    from .tasks import deliver_webhooks_task

    if not delivery_ids:
        return
    try:
        deliver_webhooks_task.apply_async(args=[list(delivery_ids)], expires=600)
    except Exception:
        # The rows are committed; the beat sweep sends them when the broker is back.
        logger.warning("Could not enqueue webhook deliveries %s; the sweep will send them", delivery_ids, exc_info=True)


@transaction.atomic
def _create_deliveries(tenant, subscriptions, event_type, events):
    """One delivery per (event, subscription) in one statement; returns the ids of the events' deliveries."""
    now = timezone.now()
    deliveries = []
    for payload, idempotency_key in events:
        # The endpoints of one event share its id.
        event_id = uuid.uuid4()
        deliveries += [
            WebhookDelivery(
                tenant=tenant,
                subscription=subscription,
                event_id=event_id,
                event_type=event_type,
                payload=payload,
                idempotency_key=idempotency_key,
                next_attempt_at=now,
                created_at=now,
            )
            for subscription in subscriptions
        ]
    WebhookDelivery.objects.for_tenant(tenant).bulk_create(deliveries, ignore_conflicts=True)
    rows = list(
        WebhookDelivery.objects.for_tenant(tenant)
        .filter(subscription__in=subscriptions, idempotency_key__in=[key for _, key in events])
        .order_by("pk")
        .values_list("pk", "status")
    )
    pending = [pk for pk, status in rows if status == DeliveryStatus.PENDING]
    transaction.on_commit(lambda: _enqueue(pending))
    return [pk for pk, _ in rows]


def account_payload(account):
    """How every webhook event names its account."""
    return {"id": account.pk, "external_id": account.external_id, "name": account.name}


def webhooks_emit(*, tenant, event_type, rows, event):
    """Queue an event of `event_type` for each of `rows` to every active subscription of the type;
    returns the delivery ids.

    `event(row)` gives the row's `(payload, idempotency key)`. `rows` (a
    queryset, say) is read only when some endpoint subscribes to the type,
    so a tenant without one reads no rows and builds no payload. Emitting
    again with the same idempotency key returns the same deliveries and
    sends nothing new.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"Unknown webhook event type {event_type!r}; expected one of {', '.join(EVENT_TYPES)}.")
    subscriptions = [
        subscription
        for subscription in WebhookSubscription.objects.for_tenant(tenant).filter(active=True)
        if event_type in subscription.event_types
    ]
    if not subscriptions:
        return []
    events = [event(row) for row in rows]
    if not events:
        return []
    return _create_deliveries(tenant, subscriptions, event_type, events)


def webhook_emit(*, tenant, event_type, payload, idempotency_key):
    """Queue one event; see webhooks_emit."""
    return webhooks_emit(
        tenant=tenant, event_type=event_type, rows=[payload], event=lambda row: (row, idempotency_key)
    )


@transaction.atomic
def webhook_send_test(*, tenant, subscription):
    """Queue a `webhook.test` event to this endpoint alone; returns the delivery."""
    (delivery_id,) = _create_deliveries(
        tenant,
        [subscription],
        TEST_EVENT_TYPE,
        [({"message": "A test event from csplatform."}, f"test:{uuid.uuid4()}")],
    )
    return WebhookDelivery.objects.for_tenant(tenant).get(pk=delivery_id)


@transaction.atomic
def webhook_deliveries_retry(*, tenant, subscription, actor, delivery_ids=None):
    """Send the endpoint's failed deliveries again (only those of `delivery_ids`, if given), each with its
    event id and body, and every attempt anew; returns the ids queued.

    A receiver that had processed an event before its answer was lost
    recognises the id and answers 2xx. An endpoint that is disabled gets
    them once it is enabled again.
    """
    failed = WebhookDelivery.objects.for_tenant(tenant).filter(subscription=subscription, status=DeliveryStatus.FAILED)
    if delivery_ids is not None:
        failed = failed.filter(pk__in=delivery_ids)
    ids = list(failed.order_by("pk").values_list("pk", flat=True))
    if not ids:
        return []
    WebhookDelivery.objects.for_tenant(tenant).filter(pk__in=ids).update(
        status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=timezone.now()
    )
    audit_record(tenant=tenant, actor=actor, action="webhook.retried", obj=subscription, after={"deliveries": len(ids)})
    if subscription.active:
        transaction.on_commit(lambda: _enqueue(ids))
    return ids


# Delivering ----------------------------------------------------------------


def backoff_seconds(attempts):
    """Seconds to wait after the `attempts`-th failure: doubling from 30 s, capped, with ±20% jitter."""
    delay = min(BACKOFF_BASE_SECONDS * 2 ** (attempts - 1), BACKOFF_MAX_SECONDS)
    return delay * random.uniform(0.8, 1.2)


@transaction.atomic
def _claim(deliveries, now, limit):
    """Lock up to `limit` due deliveries that no other worker holds, and lease them."""
    due = list(
        deliveries.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now, subscription__active=True)
        .select_for_update(skip_locked=True, of=("self",))
        .select_related("subscription", "tenant")
        .order_by("next_attempt_at", "pk")[:limit]
    )
    if due:
        WebhookDelivery.objects.dangerously_all_tenants().filter(pk__in=[d.pk for d in due]).update(
            attempts=F("attempts") + 1, next_attempt_at=now + CLAIM_LEASE
        )
        for delivery in due:
            delivery.attempts += 1
    return due


def webhook_deliver_due(*, now=None, limit=100, delivery_ids=None):
    """Attempt the due deliveries (of every tenant, or only `delivery_ids`); returns how many were attempted.

    1. Claim due deliveries with SKIP LOCKED and lease them, so a second
       worker picks other rows and a dead worker's rows come back later.
       The claim spans tenants: row-level security is bypassed for it alone.
    2. POST each, outside any transaction, in its tenant's context.
    3. Record the outcome: delivered, or due again after a backoff, or
       failed for good after MAX_ATTEMPTS; count the endpoint's failures.
    """
    now = now or timezone.now()
    deliveries = WebhookDelivery.objects.dangerously_all_tenants()
    if delivery_ids is not None:
        deliveries = deliveries.filter(pk__in=delivery_ids)
    with dangerously_bypass_rls():
        claimed = _claim(deliveries, now, limit)
    disabled = set()
    for delivery in claimed:
        with tenant_context(delivery.tenant_id):
            if delivery.subscription_id in disabled:
                # Disabled during this batch: hand the claim back untried, for when it is enabled again.
                WebhookDelivery.objects.for_tenant(delivery.tenant_id).filter(pk=delivery.pk).update(
                    attempts=F("attempts") - 1, next_attempt_at=now
                )
                continue
            status_code, error = _attempt(delivery)
            if _record(delivery, status_code, error, now):
                disabled.add(delivery.subscription_id)
    return len(claimed)


def _attempt(delivery):
    body = event_body(delivery, delivery.tenant.slug)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "csplatform-webhooks/1",
        SIGNATURE_HEADER: sign(delivery.subscription.secret, body, int(time.time())),
        EVENT_ID_HEADER: str(delivery.event_id),
    }
    try:
        status_code, snippet = http.post(delivery.subscription.url, body, headers)
    except http.UnsafeTarget as exc:
        return None, str(exc)
    except (OSError, HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if 200 <= status_code < 300:
        return status_code, ""
    return status_code, f"HTTP {status_code}: {snippet}"


@transaction.atomic
def _record(delivery, status_code, error, now):
    """Store the outcome of an attempt; True when it got the endpoint disabled."""
    tenant = delivery.tenant
    deliveries = WebhookDelivery.objects.for_tenant(tenant).filter(pk=delivery.pk)
    subscriptions = WebhookSubscription.objects.for_tenant(tenant).filter(pk=delivery.subscription_id)
    if not error:
        deliveries.update(
            status=DeliveryStatus.DELIVERED,
            delivered_at=timezone.now(),
            last_status_code=status_code,
            last_error="",
            next_attempt_at=None,
        )
        subscriptions.update(consecutive_failures=0)
        return False
    finished = delivery.attempts >= MAX_ATTEMPTS
    deliveries.update(
        status=DeliveryStatus.FAILED if finished else DeliveryStatus.PENDING,
        last_status_code=status_code,
        last_error=error[:2000],
        next_attempt_at=None if finished else now + dt.timedelta(seconds=backoff_seconds(delivery.attempts)),
    )
    subscriptions.update(consecutive_failures=F("consecutive_failures") + 1)
    failures = subscriptions.values_list("consecutive_failures", flat=True).first()
    if failures is not None and failures >= settings.CSP_WEBHOOK_DISABLE_AFTER:
        _disable(delivery.subscription, failures, error, now)
        return True
    return False


def _disable(subscription, failures, error, now):
    """Turn off an endpoint that keeps failing, once, and tell the tenant's admins."""
    from .notifications import notifications_enqueue

    tenant = subscription.tenant
    if not WebhookSubscription.objects.for_tenant(tenant).filter(pk=subscription.pk, active=True).update(
        active=False, disabled_at=now
    ):
        return
    audit_record(
        tenant=tenant,
        action="webhook.disabled",
        obj=subscription,
        before={"active": True},
        after={"active": False, "consecutive_failures": failures, "last_error": error[:500]},
    )
    admins = Membership.objects.for_tenant(tenant).filter(role=Role.ADMIN, user__is_active=True).select_related("user")
    subject = f"Webhook endpoint disabled: {subscription.url}"
    text = (
        f"The webhook endpoint {subscription.url} failed {failures} times in a row, so csplatform stopped "
        f"sending to it.\n\nLast error: {error[:500]}\n\nFix the endpoint, then enable it again in the "
        "webhook settings; the events that were waiting are sent then."
    )
    rows = [
        Notification(
            tenant=tenant,
            channel=Channel.EMAIL,
            user=membership.user,
            recipient=membership.user.email,
            subject=subject,
            text=text,
            idempotency_key=f"webhook:{subscription.pk}:disabled:{int(now.timestamp())}:{membership.user.email}",
            next_attempt_at=now,
        )
        for membership in admins
    ]
    notifications_enqueue(tenant=tenant, notifications=rows)
