"""The alerts inbox and the in-place acknowledge and resolve actions (pages under /t/<slug>/alerts/).

Actions answer an htmx request with the alert's row re-rendered, and a plain
form post with a redirect back, so the inbox works without JavaScript too.
"""

import datetime as dt

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Exists, Min, OuterRef, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from csplatform.tenancy.decorators import (
    QueryChoices,
    back_to,
    can_change,
    object_to_change,
    row_action_answer,
    tell_bulk_outcome,
    tell_form_errors,
    tenant_page,
    ticked_rows_action,
)

from .forms import SNOOZE_CHOICES, AlertsBulkForm
from .models import Alert, AlertRule, AlertStatus, Segment, SegmentMembership, Severity, snoozed_at
from .notifications import member_notifications, notifications_mark_read
from .services import (
    alert_acknowledge,
    alert_resolve,
    alerts_acknowledge,
    alerts_resolve,
    alerts_snooze,
    alerts_wake,
)

INBOX_PAGE_SIZE = 50
NOTIFICATIONS_PAGE_SIZE = 50
TABS = [
    (AlertStatus.OPEN, "Open"),
    (AlertStatus.ACKNOWLEDGED, "Acknowledged"),
    ("snoozed", "Snoozed"),
    (AlertStatus.RESOLVED, "Resolved"),
]
# As the portfolio's columns: "-severity" is the most severe first; no sort is the tab's own order.
SORTS = [("", "Newest first"), ("-severity", "Most severe first")]
ACCOUNT_ALERTS_SHOWN = 20


def alert_rows(tenant):
    """Alerts with everything a row shows, joined in the one query."""
    return Alert.objects.for_tenant(tenant).select_related(
        "account__owner", "rule", "acknowledged_by", "resolved_by", "snoozed_by"
    )


def in_tab(tab, now):
    """The alerts an inbox tab lists: a snoozed alert is under Snoozed until then, not under its status."""
    if tab == "snoozed":
        return snoozed_at(now)
    return Q(status=tab) & ~snoozed_at(now)


def default_owner_scope(request):
    # A CSM's inbox starts with the alerts of their own accounts; admins and viewers look at everything.
    return "mine" if request.membership.role == "csm" else "all"


@tenant_page
def alert_inbox(request):
    """1. Filters (tab, severity, owner, rule, segment) narrow one queryset; a value that is none of a
       filter's choices is named as an error beside it, and the other filters still apply. `sort`
       lists the most severe first, each severity in the tab's own order.
    2. Counts per tab under the same filters: one query.
    3. The page of alerts with account, owner and rule joined: one query (plus the paginator's count).
    """
    tenant = request.tenant
    query = QueryChoices(request)
    chosen = query.chosen
    tab = chosen("tab", {key: key for key, _ in TABS}, AlertStatus.OPEN)
    severity = chosen("severity", {value: value for value in Severity.values}, "")
    owner = chosen("owner", {"mine": "mine", "all": "all"}, default_owner_scope(request))
    rules = list(AlertRule.objects.for_tenant(tenant).only("pk", "name"))
    rule = chosen("rule", {str(r.pk): r for r in rules})
    segments = list(Segment.objects.for_tenant(tenant).only("pk", "key", "name"))
    segment = chosen("segment", {s.key: s for s in segments})
    sort = chosen("sort", {key: key for key, _ in SORTS if key}, "")

    alerts = alert_rows(tenant)
    if severity:
        alerts = alerts.filter(severity=severity)
    if owner == "mine":
        alerts = alerts.filter(account__owner=request.user)
    if rule is not None:
        alerts = alerts.filter(rule=rule)
    if segment is not None:
        stays = SegmentMembership.objects.for_tenant(tenant).current().filter(segment=segment)
        alerts = alerts.filter(Exists(stays.filter(account_id=OuterRef("account_id"))))
    now = timezone.now()
    counts = alerts.aggregate(**{key: Count("pk", filter=in_tab(key, now)) for key, _ in TABS})
    # Resolved alerts read newest resolution first, snoozed ones soonest back first, the others newest opened first.
    tab_order = {AlertStatus.RESOLVED: ("-resolved_at", "-id"), "snoozed": ("snoozed_until", "id")}
    ordering = tab_order.get(tab, ("-opened_at", "-id"))
    listed = alerts.filter(in_tab(tab, now))
    listed = listed.most_severe_first(*ordering) if sort == "-severity" else listed.order_by(*ordering)
    page = Paginator(listed, INBOX_PAGE_SIZE).get_page(request.GET.get("page"))
    filters = {
        "severity": severity,
        "owner": owner,
        "rule": str(rule.pk) if rule else "",
        "segment": segment.key if segment else "",
        "sort": sort,
    }
    context = {
        "page": page,
        "tab": tab,
        "tabs": [{"key": key, "label": label, "count": counts.get(key, 0)} for key, label in TABS],
        "filters": filters,
        "query": "&".join(f"{name}={value}" for name, value in filters.items() if value),
        "severities": Severity.choices,
        "sorts": SORTS,
        "rules": rules,
        "segments": segments,
        "errors": query.errors,
        "can_change": can_change(request),
        # Rows are ticked for the bulk actions; a resolved alert has none left.
        "bulk": can_change(request) and tab != AlertStatus.RESOLVED,
        "snooze_choices": SNOOZE_CHOICES,
        "show_account": True,
    }
    return render(request, "alerts/inbox.html", context)


def account_alerts_context(request, account):
    """The account's open and acknowledged alerts for its page (one query).

    Joined with what their rows show there: not the account, which is the
    page's, nor who resolved them, as none is resolved.
    """
    alerts = (
        Alert.objects.for_tenant(request.tenant)
        .active()
        .filter(account=account)
        .select_related("rule", "acknowledged_by", "snoozed_by")
        .order_by("-opened_at", "-id")
    )
    return {"account_alerts": list(alerts[:ACCOUNT_ALERTS_SHOWN])}


def account_segments_context(request, account):
    """The segments the account is in now, by name, for its page (one query).

    A contact segment counts the account's contacts in it; since when is the first of their stays.
    """
    segments = (
        SegmentMembership.objects.for_tenant(request.tenant)
        .current()
        .filter(account=account)
        .values("segment__key", "segment__name", "segment__subject")
        .annotate(since=Min("entered_at"), contacts=Count("contact"))
        .order_by("segment__name", "segment__key")
    )
    return {"account_segments": list(segments)}


def alert_row_answer(request, alert, done, error=None):
    """The answer to an action on an alert's row: the row re-rendered (htmx), else a redirect back with a message."""
    context = {"alert": alert_rows(request.tenant).get(pk=alert.pk)}
    return row_action_answer(
        request, "alerts/_alert_row.html", context,
        title=alert.title, done=done, error=error, fallback=f"/t/{request.tenant.slug}/alerts/",
    )


def _act(request, alert_id, service, done):
    """Run `service` on the tenant's alert, then answer with its row."""
    tenant = request.tenant
    alert = object_to_change(request, Alert.objects.for_tenant(tenant), alert_id)
    note = request.POST.get("note", "").strip()
    try:
        service(tenant=tenant, alert=alert, user=request.user, note=note)
    except ValidationError as exc:
        return alert_row_answer(request, alert, done, " ".join(exc.messages))
    return alert_row_answer(request, alert, done)


@tenant_page
@require_POST
def alert_acknowledge_page(request, alert_id):
    return _act(request, alert_id, alert_acknowledge, "Acknowledged")


@tenant_page
@require_POST
def alert_resolve_page(request, alert_id):
    return _act(request, alert_id, alert_resolve, "Resolved")


def _acknowledge(request, ids, data):
    return alerts_acknowledge(tenant=request.tenant, alert_ids=ids, user=request.user, note=data["note"].strip())


def _resolve(request, ids, data):
    return alerts_resolve(tenant=request.tenant, alert_ids=ids, user=request.user, note=data["note"].strip())


def _snooze(request, ids, data):
    until = timezone.now() + dt.timedelta(days=data["days"])
    return alerts_snooze(tenant=request.tenant, alert_ids=ids, until=until, user=request.user)


def _wake(request, ids, data):
    return alerts_wake(tenant=request.tenant, alert_ids=ids)


# What each bulk action runs, what it says it did, and the state of the alerts it leaves alone.
BULK_ACTIONS = {
    "acknowledge": (_acknowledge, "Acknowledged", "not open"),
    "resolve": (_resolve, "Resolved", "already resolved"),
    "snooze": (_snooze, "Snoozed", "already resolved"),
    "wake": (_wake, "Woke", "not snoozed"),
}


@ticked_rows_action("alerts")
def alerts_bulk_page(request):
    """Acknowledge, resolve, snooze or wake the alerts ticked in the inbox; a note goes with the first two.

    Alerts already past that step (someone else was quicker) are left as they
    are and counted apart; ids that are not the tenant's alerts are counted
    with them, so the answer tells nothing of other tenants.
    """
    form = AlertsBulkForm(request.POST)
    if not form.is_valid():
        return tell_form_errors(request, form)
    action, done, rest = BULK_ACTIONS[form.cleaned_data["action"]]
    selected = set(form.cleaned_data["alert"])
    changed = action(request, selected, form.cleaned_data)
    tell_bulk_outcome(request, done=done, noun="alert", changed=len(changed), selected=len(selected), rest=rest)


# The member's in-app notifications


def notifications_url(tenant):
    return reverse("notifications", kwargs={"tenant_slug": tenant.slug})


@tenant_page
def notification_list(request):
    """What alert rules and teammates told this member in the app, newest first, the unread ones marked new."""
    notifications = member_notifications(request.tenant, request.user).select_related("alert")
    page = Paginator(notifications, NOTIFICATIONS_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "alerts/notifications.html", {"page": page})


@tenant_page
def notification_open(request, notification_id):
    """Follow a notification: it is read now, and the page of the account it is about opens (else the list).

    Another member's or tenant's notification is not found.
    """
    tenant = request.tenant
    notifications = member_notifications(tenant, request.user).select_related("alert")
    notification = get_object_or_404(notifications, pk=notification_id)
    notifications_mark_read(tenant=tenant, user=request.user, notification_ids=[notification.pk])
    account_id = notification.alert.account_id if notification.alert else notification.account_id
    if account_id is None:
        return redirect(notifications_url(tenant))
    return redirect("account-detail", tenant_slug=tenant.slug, account_id=account_id)


@tenant_page
@require_POST
def notifications_read_all(request):
    read = notifications_mark_read(tenant=request.tenant, user=request.user)
    messages.success(request, f"Marked {read} notification{pluralize(read)} read.")
    return redirect(back_to(request, notifications_url(request.tenant)))
