"""An account's story in one list, newest first: what every app recorded about it.

Stage moves, health colour changes, alerts, notes, emails, tasks, playbook
runs and segments each keep their own table; this reads each of them for one
account and merges the results. A page of the list runs one query per kind of
event whatever the account's history, each limited to the page's size, and
a cursor pages on to older events without skipping any that share an instant.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import BooleanField, DateField, DateTimeField, DecimalField, F, Q, Value, Window
from django.db.models.functions import Lag
from django.urls import reverse
from django.utils.dateformat import format as date_format
from django.utils.text import Truncator, capfirst, get_text_list

from alerts.models import Alert, SegmentMembership
from csplatform.customers.models import AccountChange, AccountNote, ContactChange
from csplatform.tenancy.timezones import day_start, day_text, tenant_zone
from health.models import HealthSnapshot
from lifecycle.models import StageTransition, TransitionKind
from playbooks.models import EmailStatus, OutboundEmail, Run, Task

KINDS = {
    "stage": "Stage moves",
    "health": "Health",
    "alert": "Alerts",
    "note": "Notes",
    "email": "Emails",
    "task": "Tasks",
    "playbook": "Playbooks",
    "segment": "Segments",
    "change": "Account changes",
    "contact": "Contact changes",
}
DETAIL_CHARS = 300


@dataclass(frozen=True)
class Entry:
    at: dt.datetime
    kind: str
    text: str
    detail: str = ""
    by: str = ""
    url: str = ""
    # A whole day's entry (a health snapshot's) names its day, the tenant's, rather than a time.
    day: dt.date | None = None
    # The entry's source (its place in SOURCES) and row: with `at`, they order the entries of one instant.
    source: int = 0
    pk: int = 0

    @property
    def cursor(self):
        return f"{self.at.isoformat()}~{self.source}~{self.pk}"


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the entries after it are older, or as old and later in (source, descending pk)."""

    at: dt.datetime
    source: int
    pk: int

    @classmethod
    def parse(cls, text):
        """The cursor in `text`, or ValueError saying what is wrong with it."""
        try:
            at, source, pk = text.split("~")
            cursor = cls(dt.datetime.fromisoformat(at), int(source), int(pk))
        except ValueError:
            cursor = None
        # The id must fit the database's 64-bit keys, or comparing with it would fail there.
        valid = cursor is not None and cursor.at.tzinfo is not None
        if not (valid and 0 <= cursor.source < len(SOURCES) and 0 <= cursor.pk < 2**63):
            raise ValueError("Not a position in this list; follow the page's own link to older events.")
        return cursor

    def same_instant(self, source):
        """Which rows of `source` at the cursor's very instant come after it: a Q, or None for none."""
        if source > self.source:
            return Q()
        if source == self.source:
            return Q(pk__lt=self.pk)
        return None

    def after(self, source, field):
        """The rows of `source` whose entries come after this cursor, `field` being their time."""
        older, tie = Q(**{f"{field}__lt": self.at}), self.same_instant(source)
        return older if tie is None else older | (Q(**{field: self.at}) & tie)


def _name(user):
    return str(user) if user is not None else ""


def _clip(text):
    return Truncator(text).chars(DETAIL_CHARS)


def _latest(rows, field, cursor, source, limit):
    """The `limit` rows of `source` latest by `field` (their entries' time) that come after `cursor`."""
    if cursor:
        rows = rows.filter(cursor.after(source, field))
    return rows.order_by(f"-{field}", "-pk")[:limit]


def _stage_moves(tenant, account, cursor, limit, source):
    moves = StageTransition.objects.for_tenant(tenant).filter(account=account)
    entries = []
    for move in _latest(moves.select_related("from_stage", "to_stage", "by_user"), "at", cursor, source, limit):
        to = move.to_stage.name if move.to_stage else move.to_key
        if move.kind == TransitionKind.INITIAL or not move.from_key:
            text = f"Placed in {to}"
        else:
            text = f"Moved from {move.from_stage.name if move.from_stage else move.from_key} to {to}"
        detail = " · ".join(part for part in (move.get_kind_display(), move.reason) if part)
        entries.append(Entry(move.at, "stage", text, _clip(detail), _name(move.by_user), source=source, pk=move.pk))
    return entries


def _health_changes(tenant, account, cursor, limit, source):
    """The days the account's colour changed, at the start of the day in the tenant's zone."""
    snapshots = HealthSnapshot.objects.for_tenant(tenant).filter(account=account)
    if cursor:
        # A day's entry is at its midnight: the cursor's day and those before it, less that day if the cursor
        # is at its midnight and not before this source's entry of it. Earlier days keep their previous colour.
        day = cursor.at.astimezone(tenant_zone(tenant)).date()
        if day_start(tenant, day) != cursor.at:
            snapshots = snapshots.filter(day__lte=day)
        else:
            older, tie = Q(day__lt=day), cursor.same_instant(source)
            snapshots = snapshots.filter(older if tie is None else older | (Q(day=day) & tie))
    changes = (
        snapshots.annotate(previous=Window(Lag("colour", default=Value("first")), order_by=F("day").asc()))
        .exclude(colour=F("previous"))
        .order_by("-day", "-pk")
        .values("pk", "day", "colour", "score", "previous")[:limit]
    )
    entries = []
    for change in changes:
        colour = change["colour"].title() or "Not scored"
        score = f" ({change['score']:.0f})" if change["score"] is not None else ""
        if change["previous"] == "first":
            text = f"Health first scored {colour}{score}"
        else:
            text = f"Health turned {colour}{score}, from {change['previous'].title() or 'not scored'}"
        entries.append(
            Entry(day_start(tenant, change["day"]), "health", text, day=change["day"], source=source, pk=change["pk"])
        )
    return entries


def _alerts_opened(tenant, account, cursor, limit, source):
    alerts = Alert.objects.for_tenant(tenant).filter(account=account)
    return [
        Entry(alert.opened_at, "alert", f"Alert opened: {alert.title}", alert.get_severity_display(),
              source=source, pk=alert.pk)
        for alert in _latest(alerts, "opened_at", cursor, source, limit)
    ]


def _alerts_acknowledged(tenant, account, cursor, limit, source):
    # Without the alert's note: the one it has now may be the one written when it was resolved.
    alerts = Alert.objects.for_tenant(tenant).filter(account=account, acknowledged_at__isnull=False)
    return [
        Entry(alert.acknowledged_at, "alert", f"Alert acknowledged: {alert.title}", "",
              _name(alert.acknowledged_by), source=source, pk=alert.pk)
        for alert in _latest(alerts.select_related("acknowledged_by"), "acknowledged_at", cursor, source, limit)
    ]


def _alerts_resolved(tenant, account, cursor, limit, source):
    alerts = Alert.objects.for_tenant(tenant).filter(account=account, resolved_at__isnull=False)
    entries = []
    for alert in _latest(alerts.select_related("resolved_by"), "resolved_at", cursor, source, limit):
        detail = " · ".join(part for part in (alert.get_resolution_display(), alert.note) if part)
        entries.append(Entry(alert.resolved_at, "alert", f"Alert resolved: {alert.title}", _clip(detail),
                             _name(alert.resolved_by), source=source, pk=alert.pk))
    return entries


def _notes(tenant, account, cursor, limit, source):
    notes = AccountNote.objects.for_tenant(tenant).filter(account=account)
    return [
        Entry(note.created_at, "note", "Pinned note" if note.pinned else "Note", _clip(note.body), _name(note.author),
              source=source, pk=note.pk)
        for note in _latest(notes.select_related("author"), "created_at", cursor, source, limit)
    ]


def _emails_sent(tenant, account, cursor, limit, source):
    emails = OutboundEmail.objects.for_tenant(tenant).filter(account=account, status=EmailStatus.SENT)
    return [
        Entry(email.sent_at, "email", f"Email sent to {email.to_email}", _clip(email.subject),
              url=reverse("outbox-email", args=[tenant.slug, email.pk]), source=source, pk=email.pk)
        for email in _latest(emails.only("pk", "sent_at", "to_email", "subject"), "sent_at", cursor, source, limit)
    ]


def _tasks_added(tenant, account, cursor, limit, source):
    tasks = Task.objects.for_tenant(tenant).filter(account=account)
    entries = []
    for task in _latest(tasks.select_related("owner"), "created_at", cursor, source, limit):
        detail = f"For {task.owner}" if task.owner else "Unassigned"
        entries.append(Entry(task.created_at, "task", f"Task added: {task.title}", detail, source=source, pk=task.pk))
    return entries


def _tasks_done(tenant, account, cursor, limit, source):
    tasks = Task.objects.for_tenant(tenant).filter(account=account, completed_at__isnull=False)
    return [
        Entry(task.completed_at, "task", f"Task done: {task.title}", by=_name(task.completed_by),
              source=source, pk=task.pk)
        for task in _latest(tasks.select_related("completed_by"), "completed_at", cursor, source, limit)
    ]


def _runs_started(tenant, account, cursor, limit, source):
    runs = Run.objects.for_tenant(tenant).filter(account=account)
    return [
        Entry(run.started_at, "playbook", f"Playbook started: {run.playbook.name}", _clip(run.reason),
              _name(run.started_by), source=source, pk=run.pk)
        for run in _latest(runs.select_related("playbook", "started_by"), "started_at", cursor, source, limit)
    ]


def _runs_ended(tenant, account, cursor, limit, source):
    runs = Run.objects.for_tenant(tenant).filter(account=account, ended_at__isnull=False)
    return [
        Entry(run.ended_at, "playbook", f"Playbook {run.get_status_display().lower()}: {run.playbook.name}",
              source=source, pk=run.pk)
        for run in _latest(runs.select_related("playbook"), "ended_at", cursor, source, limit)
    ]


def _segment_stays(field, verb):
    """The reader of the account's (or its contacts') entries into segments or exits from them."""

    def read(tenant, account, cursor, limit, source):
        stays = SegmentMembership.objects.for_tenant(tenant).filter(account=account, **{f"{field}__isnull": False})
        entries = []
        for stay in _latest(stays.select_related("segment", "contact"), field, cursor, source, limit):
            who = f"{stay.contact.name or stay.contact.email} {verb}" if stay.contact_id else verb.capitalize()
            text = f"{who} the segment {stay.segment.name}"
            entries.append(Entry(getattr(stay, field), "segment", text, source=source, pk=stay.pk))
        return entries

    return read


def _shown_value(tenant, field, value, owners):
    """A changed field's stored JSON value as the timeline shows it."""
    if value is None or value == "":
        return "none"
    if field.name == "owner":
        return str(owners[value]) if value in owners else "a former member"
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(field, BooleanField):
        return "yes" if value else "no"
    if isinstance(field, DecimalField):
        return f"{Decimal(value):,.2f}"
    if isinstance(field, DateTimeField):
        return date_format(dt.datetime.fromisoformat(value).astimezone(tenant_zone(tenant)), "M j, Y H:i")
    if isinstance(field, DateField):
        return day_text(dt.date.fromisoformat(value))
    return value


def _changed(tenant, change, owners=None, values=None):
    """`(labels, detail)` of a change: its fields' names, and `Plan: pro → team` for each, as the timeline says
    them; `values` instead of the change's own (`{field: [value, …]}`) show some of them only."""
    values = change.fields if values is None else values
    fields = [change.RECORD._meta.get_field(name) for name in change.FIELDS if name in values]
    detail = " · ".join(
        f"{capfirst(field.verbose_name)}: "
        + " → ".join(_shown_value(tenant, field, value, owners or {}) for value in values[field.name])
        for field in fields
    )
    return get_text_list([str(field.verbose_name) for field in fields], "and"), _clip(detail)


def _account_changes(tenant, account, cursor, limit, source):
    changes = AccountChange.objects.for_tenant(tenant).filter(account=account)
    changes = list(_latest(changes, "at", cursor, source, limit))
    # Named as they are called now.
    owners = AccountChange.owners_named(changes)
    entries = []
    for change in changes:
        labels, detail = _changed(tenant, change, owners)
        entries.append(Entry(change.at, "change", f"Changed {labels}", detail, change.actor_label, source=source,
                             pk=change.pk))
    return entries


def _contact_changes(tenant, account, cursor, limit, source):
    changes = ContactChange.objects.for_tenant(tenant).filter(account=account).select_related("contact")
    entries = []
    for change in _latest(changes, "at", cursor, source, limit):
        if change.added or change.removed:
            # What it was given or had, alone: not the "none →" or "→ none" of every field.
            side = 1 if change.added else 0
            values = {name: [pair[side]] for name, pair in change.fields.items() if pair[side]}
            _, detail = _changed(tenant, change, values=values)
            verb = "Added" if change.added else "Removed"
            text = f"{verb} the contact {change.contact_called}"
        else:
            labels, detail = _changed(tenant, change)
            text = f"Changed {change.contact_called}'s {labels}"
        entries.append(Entry(change.at, "contact", text, detail, change.actor_label, source=source, pk=change.pk))
    return entries


# (kind, reader) of each source; an entry's source is its place here, so this order is part of every cursor.
SOURCES = (
    ("stage", _stage_moves),
    ("health", _health_changes),
    ("alert", _alerts_opened),
    ("alert", _alerts_resolved),
    ("note", _notes),
    ("email", _emails_sent),
    ("task", _tasks_added),
    ("task", _tasks_done),
    ("playbook", _runs_started),
    ("playbook", _runs_ended),
    ("segment", _segment_stays("entered_at", "entered")),
    ("segment", _segment_stays("left_at", "left")),
    # Added after the others, so that the cursors already handed out keep their sources' places.
    ("alert", _alerts_acknowledged),
    ("change", _account_changes),
    ("contact", _contact_changes),
)


def account_activity(*, tenant, account, kinds=(), cursor=None, limit=50):
    """`(entries, more)`: the account's `limit` latest entries of `kinds` (none named: every kind) after
    `cursor`, newest first, and whether older ones remain. One query per source of the kinds asked."""
    kinds = kinds or tuple(KINDS)
    entries = []
    for source, (kind, read) in enumerate(SOURCES):
        if kind in kinds:
            entries.extend(read(tenant, account, cursor, limit + 1, source))
    # Newest first; at one instant, by source and then newest row, as the cursor pages on.
    entries.sort(key=lambda entry: (entry.at, -entry.source, entry.pk), reverse=True)
    return entries[:limit], len(entries) > limit
