"""Segments and alerts: the writes, and the set-based steps the pipeline runs.

`segments_refresh` and `alerts_evaluate` work on chunks of accounts with a
fixed number of queries per chunk, however many segments and rules: one
query for whether each account (or contact) matches each of them, one read
of the current memberships or alerts, bulk writes.
"""

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from csplatform.customers.models import Account, Contact
from csplatform.rules import CriteriaError, annotate_matches, compile_criteria, load_criteria
from csplatform.sql import OneOf
from csplatform.tenancy.models import Membership, Role, User
from csplatform.tenancy.services import audit_record

from .models import (
    ACTIVE_STATUSES,
    Alert,
    AlertRule,
    AlertStatus,
    Channel,
    Notification,
    Resolution,
    Segment,
    SegmentMembership,
    Subject,
    snoozed_at,
)
from .notifications import notifications_enqueue
from .webhooks import account_payload, webhooks_emit

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1000
PREVIEW_SAMPLE_SIZE = 10


def _chunks(ids, size=CHUNK_SIZE):
    ids = sorted(set(ids))
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def criteria_compile(*, tenant, text, subject=Subject.ACCOUNT, field="criteria_text"):
    """`(json, canonical text)` of criteria text; a ValidationError on `field` that points at the error."""
    text = (text or "").strip()
    if not text:
        raise ValidationError({field: "Write the criteria, e.g. health.score < 40."})
    try:
        criteria = compile_criteria(text, subject=subject, tenant=tenant)
    except CriteriaError as exc:
        raise ValidationError({field: str(exc)}) from exc
    return criteria.json, criteria.text


def _stored_criteria(tenant, data, subject, label):
    """Stored criteria compiled again, or None (logged) when a field it reads no longer exists."""
    try:
        return load_criteria(data, subject=subject, tenant=tenant)
    except CriteriaError:
        logger.warning("Criteria of %s (tenant %s) no longer compile", label, tenant.pk, exc_info=True)
        return None


# Segments ------------------------------------------------------------------

SEGMENT_FIELDS = ("key", "name", "description", "subject", "criteria_text")


@dataclass(frozen=True)
class SegmentChange:
    segment_id: int
    account_id: int
    entered: bool
    contact_id: int | None = None


def segment_snapshot(segment):
    return {name: getattr(segment, name) for name in SEGMENT_FIELDS}


def _refresh_after_commit(tenant, segment):
    from .tasks import refresh_segment_task

    def enqueue():
        try:
            refresh_segment_task.apply_async(args=[tenant.pk, segment.pk], expires=3600)
        except Exception:
            # The hourly full sweep of the pipeline refreshes it as well.
            logger.warning("Could not enqueue the refresh of segment %s", segment.pk, exc_info=True)

    transaction.on_commit(enqueue)


@transaction.atomic
def segment_create(*, tenant, actor, key, name, criteria_text, subject=Subject.ACCOUNT, description=""):
    """Save a segment; its members are filled in by a worker right after commit."""
    if Segment.objects.for_tenant(tenant).filter(key=key).exists():
        raise ValidationError({"key": f"A segment with key {key!r} already exists."})
    criteria, text = criteria_compile(tenant=tenant, text=criteria_text, subject=subject)
    segment = Segment(
        tenant=tenant, key=key, name=name, description=description, subject=subject, criteria=criteria, criteria_text=text
    )
    segment.full_clean(exclude=["tenant"], validate_unique=False, validate_constraints=False)
    segment.save()
    audit_record(tenant=tenant, actor=actor, action="segment.created", obj=segment, after=segment_snapshot(segment))
    _refresh_after_commit(tenant, segment)
    return segment


@transaction.atomic
def segment_update(*, tenant, segment, actor, **changes):
    """Change a segment; the key and subject stay, since criteria, playbooks and memberships refer to them."""
    before = segment_snapshot(segment)
    for name in ("key", "subject"):
        if name in changes and changes.pop(name) != getattr(segment, name):
            raise ValidationError({name: f"A segment's {name} cannot change; create a new segment instead."})
    if "criteria_text" in changes:
        segment.criteria, segment.criteria_text = criteria_compile(
            tenant=tenant, text=changes.pop("criteria_text"), subject=segment.subject
        )
    for name, value in changes.items():
        setattr(segment, name, value)
    segment.full_clean(exclude=["tenant"], validate_unique=False, validate_constraints=False)
    segment.save()
    audit_record(
        tenant=tenant, actor=actor, action="segment.updated", obj=segment, before=before, after=segment_snapshot(segment)
    )
    _refresh_after_commit(tenant, segment)
    return segment


@transaction.atomic
def segment_delete(*, tenant, segment, actor):
    audit_record(tenant=tenant, actor=actor, action="segment.deleted", obj=segment, before=segment_snapshot(segment))
    segment.delete()


def _subject_queryset(tenant, subject):
    if subject == Subject.CONTACT:
        return Contact.objects.for_tenant(tenant).select_related("account", "account__owner")
    return Account.objects.for_tenant(tenant).select_related("owner")


def segment_live_members(*, tenant, segment, now=None):
    """The accounts (or contacts) that match the segment's criteria right now, in one query."""
    criteria = load_criteria(segment.criteria, subject=segment.subject, tenant=tenant)
    return criteria.filter(_subject_queryset(tenant, segment.subject), now=now)


def segment_preview(*, tenant, text, subject=Subject.ACCOUNT):
    """How many accounts (or contacts) criteria text matches now, and the first few; ValidationError if invalid."""
    criteria_json, _ = criteria_compile(tenant=tenant, text=text, subject=subject)
    criteria = load_criteria(criteria_json, subject=subject, tenant=tenant)
    matches = criteria.filter(_subject_queryset(tenant, subject))
    return {"count": matches.count(), "sample": list(matches.order_by("pk")[:PREVIEW_SAMPLE_SIZE])}


def segments_refresh(*, tenant, account_ids, segments=None, now=None):
    """Bring the memberships of these accounts up to date; returns the SegmentChanges.

    For each chunk of accounts, and each subject its segments have, in a
    fixed number of queries however many segments the tenant has: one query
    for whether each account (or contact) matches each segment, one for the
    current memberships, then the entries inserted and the departures closed
    in bulk. A contact segment has a membership per contact; its changes
    carry the contact id.
    """
    now = now or timezone.now()
    if segments is None:
        segments = Segment.objects.for_tenant(tenant).order_by("pk")
    by_subject = {}
    for segment in segments:
        criteria = _stored_criteria(tenant, segment.criteria, segment.subject, f"segment {segment.key}")
        if criteria is not None:
            by_subject.setdefault(segment.subject, []).append((segment, criteria))
    changes = []
    for chunk in _chunks(account_ids):
        for subject, subject_segments in by_subject.items():
            changes.extend(_refresh_chunk(tenant, subject, subject_segments, chunk, now))
    return changes


def _matching(tenant, subject, conditions, account_ids, now):
    """`(account id, contact id or None, *whether it matches each condition)` of the chunk's accounts or contacts."""
    if subject == Subject.CONTACT:
        contacts = Contact.objects.for_tenant(tenant).filter(OneOf("account_id", account_ids)).order_by()
        return annotate_matches(contacts, conditions, now=now).values_list("account_id", "pk", *conditions)
    accounts = Account.objects.for_tenant(tenant).filter(OneOf("pk", account_ids)).order_by()
    rows = annotate_matches(accounts, conditions, now=now).values_list("pk", *conditions)
    return ((account_id, None, *matches) for account_id, *matches in rows)


@transaction.atomic
def _refresh_chunk(tenant, subject, segments, account_ids, now):
    """Refresh `segments` ([(segment, criteria)], all of `subject`) over one chunk; returns their SegmentChanges."""
    conditions = {f"segment_{segment.pk}": criteria for segment, criteria in segments}
    # Per segment, {member key: ...}: a contact segment's members are keyed by contact, an account one's by account.
    matched = {segment.pk: {} for segment, _ in segments}
    for account_id, contact_id, *matches in _matching(tenant, subject, conditions, account_ids, now):
        for segment_id, match in zip(matched, matches):
            if match:
                matched[segment_id][contact_id or account_id] = (account_id, contact_id)
    current = {segment_id: {} for segment_id in matched}
    members = (
        SegmentMembership.objects.for_tenant(tenant)
        .current()
        .filter(OneOf("account_id", account_ids), segment_id__in=list(matched))
        .order_by()
        .values_list("pk", "segment_id", "account_id", "contact_id")
    )
    for pk, segment_id, account_id, contact_id in members:
        current[segment_id][contact_id or account_id] = (pk, account_id, contact_id)

    entries, departures, changes = [], [], []
    for segment_id, matching in matched.items():
        members_now = current[segment_id]
        for key in matching.keys() - members_now.keys():
            account_id, contact_id = matching[key]
            entries.append(SegmentMembership(
                tenant=tenant, segment_id=segment_id, account_id=account_id, contact_id=contact_id, entered_at=now
            ))
            changes.append(SegmentChange(segment_id, account_id, True, contact_id))
        for key in members_now.keys() - matching.keys():
            pk, account_id, contact_id = members_now[key]
            departures.append(pk)
            changes.append(SegmentChange(segment_id, account_id, False, contact_id))
    # Ignoring conflicts keeps a concurrent refresh of the same accounts from failing the chunk.
    SegmentMembership.objects.for_tenant(tenant).bulk_create(entries, ignore_conflicts=True)
    if departures:
        SegmentMembership.objects.for_tenant(tenant).filter(pk__in=departures).update(left_at=now)
    return changes


def segment_refresh_all(*, tenant, segment, now=None):
    """Refresh one segment over every account of the tenant (after it is created or changed)."""
    account_ids = list(Account.objects.for_tenant(tenant).values_list("pk", flat=True))
    return segments_refresh(tenant=tenant, account_ids=account_ids, segments=[segment], now=now)


# Alert rules -----------------------------------------------------------------

RULE_FIELDS = (
    "key",
    "name",
    "description",
    "condition_text",
    "severity",
    "notify_owner",
    "notify_roles",
    "notify_emails",
    "channels",
    "slack_webhook_url",
    "cooldown_minutes",
    "include_terminal_stages",
    "enabled",
)


def rule_snapshot(rule):
    return {name: getattr(rule, name) for name in RULE_FIELDS}


def _check_rule(rule):
    from .http import UnsafeTarget, resolve_target

    unknown = [channel for channel in rule.channels if channel not in Channel.values]
    if unknown:
        raise ValidationError({"channels": f"Unknown channel(s) {', '.join(unknown)}; choose from {', '.join(Channel.values)}."})
    rule.channels = sorted(set(rule.channels))
    if Channel.SLACK in rule.channels:
        if not rule.slack_webhook_url:
            raise ValidationError({"slack_webhook_url": "The slack channel needs the incoming webhook URL."})
        try:
            resolve_target(rule.slack_webhook_url)
        except UnsafeTarget as exc:
            raise ValidationError({"slack_webhook_url": str(exc)}) from exc
    unknown = [role for role in rule.notify_roles if role not in Role.values]
    if unknown:
        raise ValidationError({"notify_roles": f"Unknown role(s) {', '.join(unknown)}; choose from {', '.join(Role.values)}."})
    rule.notify_roles = sorted(set(rule.notify_roles))
    rule.notify_emails = sorted({address.strip().lower() for address in rule.notify_emails if address.strip()})
    for address in rule.notify_emails:
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError({"notify_emails": f"{address!r} is not an email address."}) from None
    rule.full_clean(exclude=["tenant"], validate_unique=False, validate_constraints=False)


@transaction.atomic
def alert_rule_create(*, tenant, actor, key, name, condition_text, **fields):
    if AlertRule.objects.for_tenant(tenant).filter(key=key).exists():
        raise ValidationError({"key": f"An alert rule with key {key!r} already exists."})
    condition, text = criteria_compile(tenant=tenant, text=condition_text, field="condition_text")
    rule = AlertRule(tenant=tenant, key=key, name=name, condition=condition, condition_text=text, **fields)
    _check_rule(rule)
    rule.save()
    audit_record(tenant=tenant, actor=actor, action="alert_rule.created", obj=rule, after=rule_snapshot(rule))
    return rule


@transaction.atomic
def alert_rule_update(*, tenant, rule, actor, **changes):
    before = rule_snapshot(rule)
    if "key" in changes and changes.pop("key") != rule.key:
        raise ValidationError({"key": "A rule's key cannot change; create a new rule instead."})
    if "condition_text" in changes:
        rule.condition, rule.condition_text = criteria_compile(
            tenant=tenant, text=changes.pop("condition_text"), field="condition_text"
        )
    for name, value in changes.items():
        setattr(rule, name, value)
    _check_rule(rule)
    rule.save()
    audit_record(tenant=tenant, actor=actor, action="alert_rule.updated", obj=rule, before=before, after=rule_snapshot(rule))
    return rule


@transaction.atomic
def alert_rule_delete(*, tenant, rule, actor):
    """Delete a rule; its alerts stay in the history without it."""
    audit_record(tenant=tenant, actor=actor, action="alert_rule.deleted", obj=rule, before=rule_snapshot(rule))
    rule.delete()


# Alerts --------------------------------------------------------------------


@dataclass
class AlertChanges:
    opened: list = field(default_factory=list)
    resolved: list = field(default_factory=list)


def alerts_evaluate(*, tenant, account_ids, now=None, notify=True):
    """Open alerts where a rule's condition holds and auto-resolve those whose condition cleared.

    Every enabled rule is evaluated over each chunk of accounts in a fixed
    number of queries, however many rules the tenant has:
    1. Lock the rules' rows in id order, so two evaluations of a rule take turns.
    2. One query over the chunk's accounts: whether each matches each rule now.
    3. One query: the rules' active alerts on the chunk, and their alerts
       resolved within the longest cooldown (each rule's own is applied after).
    4. Open alerts for matches with neither (at most one active alert per
       rule and account, which a partial unique constraint also enforces;
       an account in a terminal stage matches only a rule that includes them),
       resolve active alerts whose account no longer matches, and queue the
       notifications of the new ones (unless `notify` is off: a replay of
       past days tells nobody today of what happened then).
    Returns AlertChanges with the ids opened and resolved.
    """
    now = now or timezone.now()
    changes = AlertChanges()
    rules = []
    for rule in AlertRule.objects.for_tenant(tenant).filter(enabled=True).order_by("pk"):
        criteria = _stored_criteria(tenant, rule.condition, Subject.ACCOUNT, f"alert rule {rule.key}")
        if criteria is not None:
            rules.append((rule, criteria))
    if not rules:
        return changes
    for chunk in _chunks(account_ids):
        opened, resolved = _evaluate_chunk(tenant, rules, chunk, now, notify)
        changes.opened.extend(opened)
        changes.resolved.extend(resolved)
    return changes


@transaction.atomic
def _evaluate_chunk(tenant, rules, account_ids, now, notify):
    """Evaluate `rules` ([(rule, criteria)] in id order) over one chunk; returns (opened ids, resolved ids)."""
    by_id = {rule.pk: rule for rule, _ in rules}
    locked = AlertRule.objects.for_tenant(tenant).select_for_update().filter(pk__in=list(by_id)).order_by("pk")
    list(locked.values("pk"))
    conditions = {f"rule_{rule.pk}": criteria for rule, criteria in rules}
    accounts = Account.objects.for_tenant(tenant).filter(OneOf("pk", account_ids)).order_by("pk")
    matched = {rule_id: {} for rule_id in by_id}
    for account_id, account_name, departed, *matches in annotate_matches(accounts, conditions, now=now).values_list(
        "pk", "name", "lifecycle__stage__is_terminal", *conditions
    ):
        for rule, match in zip(by_id.values(), matches):
            if match and (rule.include_terminal_stages or not departed):
                matched[rule.pk][account_id] = account_name

    longest_cooldown = max(rule.cooldown_minutes for rule in by_id.values())
    known = (
        Alert.objects.for_tenant(tenant)
        .filter(OneOf("account_id", account_ids), rule_id__in=list(by_id))
        .filter(Q(status__in=ACTIVE_STATUSES) | Q(resolved_at__gt=now - dt.timedelta(minutes=longest_cooldown)))
        .order_by()
        .values_list("pk", "rule_id", "account_id", "status", "resolved_at")
    )
    active, cooling = {}, set()
    for pk, rule_id, account_id, status, resolved_at in known:
        if status in ACTIVE_STATUSES:
            active[rule_id, account_id] = pk
        elif resolved_at > now - dt.timedelta(minutes=by_id[rule_id].cooldown_minutes):
            cooling.add((rule_id, account_id))

    new_by_rule = {}
    for rule_id, accounts_matched in matched.items():
        rule = by_id[rule_id]
        new_by_rule[rule_id] = [
            Alert(
                tenant=tenant,
                rule=rule,
                account_id=account_id,
                title=f"{rule.name}: {name}"[:300],
                severity=rule.severity,
                opened_at=now,
                details={"rule": rule.key, "condition": rule.condition_text},
                source=f"rule:{rule.key}",
            )
            for account_id, name in accounts_matched.items()
            if (rule_id, account_id) not in active and (rule_id, account_id) not in cooling
        ]
    new = [alert for alerts in new_by_rule.values() for alert in alerts]
    Alert.objects.for_tenant(tenant).bulk_create(new)
    cleared = [pk for (rule_id, account_id), pk in active.items() if account_id not in matched[rule_id]]
    if cleared:
        Alert.objects.for_tenant(tenant).filter(pk__in=cleared).update(
            status=AlertStatus.RESOLVED, resolution=Resolution.AUTO, resolved_at=now
        )
    for rule_id, alerts in new_by_rule.items():
        if alerts and notify:
            notifications_enqueue(tenant=tenant, notifications=_rule_notifications(tenant, by_id[rule_id], alerts))
    return [alert.pk for alert in new], sorted(cleared)


def _rule_notifications(tenant, rule, alerts):
    """The Notification rows of new alerts of `rule`: per recipient and channel, each once."""
    owners = dict(
        Account.objects.for_tenant(tenant)
        .filter(pk__in=[alert.account_id for alert in alerts], owner__isnull=False, owner__is_active=True)
        .values_list("pk", "owner")
    )
    users = {}
    if rule.notify_roles:
        members = Membership.objects.for_tenant(tenant).filter(role__in=rule.notify_roles, user__is_active=True)
        users = {membership.user_id: membership.user for membership in members.select_related("user")}
    owner_users = {}
    if rule.notify_owner and owners:
        owner_users = User.objects.in_bulk(set(owners.values()))
    rows = []
    for alert in alerts:
        recipients = dict(users)
        owner_id = owners.get(alert.account_id)
        if rule.notify_owner and owner_id in owner_users:
            recipients[owner_id] = owner_users[owner_id]
        rows.extend(_alert_notifications(tenant, alert, rule.channels, recipients.values(), rule.notify_emails, rule.slack_webhook_url))
    return rows


def _alert_notifications(tenant, alert, channels, users, emails=(), slack_url=""):
    subject = f"[{alert.get_severity_display()}] {alert.title}"
    text = f"{alert.title}\n\nSeverity: {alert.severity}\nOpened: {alert.opened_at:%Y-%m-%d %H:%M} UTC"
    if alert.details.get("condition"):
        text += f"\nCondition: {alert.details['condition']}"

    def row(channel, recipient, user=None):
        return Notification(
            tenant=tenant,
            alert=alert,
            channel=channel,
            user=user,
            recipient=recipient,
            subject=subject[:300],
            text=text,
            idempotency_key=f"alert:{alert.pk}:{channel}:{recipient}"[:300],
        )

    rows = []
    addresses = {user.email: user for user in users}
    if Channel.IN_APP in channels:
        rows += [row(Channel.IN_APP, user.email, user) for user in users]
    if Channel.EMAIL in channels:
        for address in emails:
            addresses.setdefault(address.lower(), None)
        rows += [row(Channel.EMAIL, address, user) for address, user in sorted(addresses.items())]
    if Channel.SLACK in channels and slack_url:
        rows.append(row(Channel.SLACK, slack_url))
    return rows


def alert_payload(alert):
    """What alert webhooks carry."""
    return {
        "alert": {
            "id": alert.pk,
            "title": alert.title,
            "severity": alert.severity,
            "status": alert.status,
            "rule": alert.rule.key if alert.rule_id else None,
            "opened_at": alert.opened_at,
            "acknowledged_at": alert.acknowledged_at,
            "acknowledged_by": alert.acknowledged_by.email if alert.acknowledged_by else None,
            "resolved_at": alert.resolved_at,
            "resolved_by": alert.resolved_by.email if alert.resolved_by else None,
            "resolution": alert.resolution,
            "note": alert.note,
        },
        "account": account_payload(alert.account),
    }


def alert_webhooks_emit(*, tenant, opened=(), acknowledged=(), resolved=()):
    """Emit alert.opened, alert.acknowledged and alert.resolved for these alert ids; the keys make a second
    call send nothing."""
    for action, ids in (("opened", opened), ("acknowledged", acknowledged), ("resolved", resolved)):
        if not ids:
            continue
        alerts = Alert.objects.for_tenant(tenant).filter(pk__in=list(ids))
        webhooks_emit(
            tenant=tenant,
            event_type=f"alert.{action}",
            rows=alerts.select_related("account", "rule", "acknowledged_by", "resolved_by"),
            event=lambda alert: (alert_payload(alert), f"alert:{alert.pk}:{action}"),
        )


def alert_raise(*, tenant, account, title, severity, details=None, source="", dedupe_key=None):
    """Open an alert without a rule (playbooks' "raise an alert"); the same dedupe_key returns the same alert.

    The account's owner is notified in the app, and alert.opened is emitted.
    """
    if account.tenant_id != tenant.pk:
        raise ValidationError({"account": "Unknown account."})
    dedupe_key = dedupe_key or ""
    alerts = Alert.objects.for_tenant(tenant)
    if dedupe_key and (existing := alerts.filter(dedupe_key=dedupe_key).first()):
        return existing
    try:
        with transaction.atomic():
            alert = alerts.create(
                tenant=tenant,
                account=account,
                title=title[:300],
                severity=severity,
                opened_at=timezone.now(),
                details=details or {},
                source=source,
                dedupe_key=dedupe_key,
            )
            owner = account.owner if account.owner_id else None
            if owner is not None:
                notifications_enqueue(tenant=tenant, notifications=_alert_notifications(tenant, alert, [Channel.IN_APP], [owner]))
            alert_webhooks_emit(tenant=tenant, opened=[alert.pk])
    except IntegrityError:
        # Raised concurrently with the same key: the other call's alert is the one.
        return alerts.get(dedupe_key=dedupe_key)
    return alert


def _alerts_change(tenant, alert_ids, eligible, changes, note=""):
    """Apply `changes` (and `note`, unless blank) to those of the tenant's alerts `alert_ids` that match
    `eligible` (a Q), and return their ids; the rows are locked in id order first, so that two members acting
    on overlapping selections take turns and the second skips what the first changed."""
    ids = list(
        Alert.objects.for_tenant(tenant)
        .filter(eligible, OneOf("pk", sorted(set(alert_ids))))
        .select_for_update()
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if ids:
        Alert.objects.for_tenant(tenant).filter(OneOf("pk", ids)).update(**changes, **({"note": note} if note else {}))
    return ids


def _member_or_none(user):
    # An API key acts without a user of its own.
    return user if getattr(user, "pk", None) else None


@transaction.atomic
def alerts_acknowledge(*, tenant, alert_ids, user, note=""):
    """Someone is on them: those of the alerts that are open become acknowledged. Returns their ids; each
    emits alert.acknowledged."""
    changes = {
        "status": AlertStatus.ACKNOWLEDGED,
        "acknowledged_by": _member_or_none(user),
        "acknowledged_at": timezone.now(),
    }
    ids = _alerts_change(tenant, alert_ids, Q(status=AlertStatus.OPEN), changes, note)
    alert_webhooks_emit(tenant=tenant, acknowledged=ids)
    return ids


@transaction.atomic
def alerts_resolve(*, tenant, alert_ids, user, note=""):
    """Close by hand those of the alerts that are open or acknowledged, with a note on what was done.

    Returns their ids; each emits alert.resolved.
    """
    changes = {
        "status": AlertStatus.RESOLVED,
        "resolution": Resolution.MANUAL,
        "resolved_by": _member_or_none(user),
        "resolved_at": timezone.now(),
    }
    ids = _alerts_change(tenant, alert_ids, Q(status__in=ACTIVE_STATUSES), changes, note)
    alert_webhooks_emit(tenant=tenant, resolved=ids)
    return ids


# The longest an alert may be put out of sight: past it, the situation deserves a fresh look or a resolution.
SNOOZE_LONGEST = dt.timedelta(days=90)


@transaction.atomic
def alerts_snooze(*, tenant, alert_ids, until, user):
    """Put those of the alerts that are open or acknowledged out of sight until `until`; returns their ids.

    They keep their status; each comes back to the inbox, the counts and the
    digest by itself once `until` passes.
    """
    now = timezone.now()
    if not now < until <= now + SNOOZE_LONGEST:
        raise ValidationError({"until": f"Snooze until a moment in the next {SNOOZE_LONGEST.days} days."})
    changes = {"snoozed_until": until, "snoozed_by": _member_or_none(user)}
    return _alerts_change(tenant, alert_ids, Q(status__in=ACTIVE_STATUSES), changes)


@transaction.atomic
def alerts_wake(*, tenant, alert_ids):
    """Bring those of the alerts that are snoozed back now; returns their ids."""
    return _alerts_change(tenant, alert_ids, snoozed_at(timezone.now()), {"snoozed_until": None, "snoozed_by": None})


def _stored(tenant, alert):
    return Alert.objects.for_tenant(tenant).get(pk=alert.pk)


@transaction.atomic
def alert_acknowledge(*, tenant, alert, user, note=""):
    """One alert: open -> acknowledged; any other status is an error naming it. Returns the alert as stored."""
    if not alerts_acknowledge(tenant=tenant, alert_ids=[alert.pk], user=user, note=note):
        status = _stored(tenant, alert).status
        raise ValidationError({"status": f"Only an open alert can be acknowledged; this one is {status}."})
    return _stored(tenant, alert)


@transaction.atomic
def alert_resolve(*, tenant, alert, user, note=""):
    """One alert, open or acknowledged, closed by hand; a resolved one is an error. Returns it as stored."""
    if not alerts_resolve(tenant=tenant, alert_ids=[alert.pk], user=user, note=note):
        raise ValidationError({"status": "The alert is already resolved."})
    return _stored(tenant, alert)
