"""Settings pages of alerts: segments, alert rules and outbound webhooks."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, render
from django.template.defaultfilters import pluralize
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from csplatform.customers.models import Contact
from csplatform.rules import CriteriaError, compile_criteria
from csplatform.rules.registry import fields_for
from csplatform.rules.settings_views import criteria_feedback
from csplatform.tenancy.decorators import tell_form_errors
from csplatform.tenancy.settings_forms import add_service_errors
from csplatform.tenancy.settings_views import as_json, back, posted, settings_page

from .filtersets import WebhookDeliveryFilterSet
from .library import starter_alerts_install, starters_missing
from .models import (
    AlertRule,
    DeliveryStatus,
    Segment,
    SegmentMembership,
    Subject,
    WebhookDelivery,
    WebhookSubscription,
)
from .services import (
    alert_rule_create,
    alert_rule_delete,
    alert_rule_update,
    segment_create,
    segment_delete,
    segment_live_members,
    segment_preview,
    segment_update,
)
from .settings_forms import AlertRuleForm, RetryDeliveriesForm, SegmentForm, WebhookForm
from .webhooks import (
    event_envelope,
    webhook_deliveries_retry,
    webhook_secret_rotate,
    webhook_send_test,
    webhook_subscription_create,
    webhook_subscription_delete,
    webhook_subscription_update,
)

# The criteria fields of these pages whose text the live check reads.
CHECKED_FIELDS = ("criteria_text", "condition_text", "exit_criteria_text", "audience_text")
DEPARTED_BOXES = ("include_terminal_stages",)
MEMBERS_PAGE_SIZE = 50
# A secret just created or rotated waits here until its page shows it, once.
NEW_SECRET_SESSION = "settings_new_webhook_secret"


def subject_feedback(*, tenant, text, subject, customers_only=False):
    """The criteria editor's feedback for account criteria (shared with stages) or contact criteria.

    `customers_only` leaves out the accounts in a terminal stage, for an alert rule that does not watch them.
    """
    if subject != Subject.CONTACT:
        return criteria_feedback(tenant=tenant, text=text, customers_only=customers_only)
    text = (text or "").strip()
    if not text:
        return {"empty": True}
    try:
        compile_criteria(text, subject=Subject.CONTACT, tenant=tenant)
    except CriteriaError as error:
        return {"error": error}
    preview = segment_preview(tenant=tenant, text=text, subject=Subject.CONTACT)
    total = Contact.objects.for_tenant(tenant).count()
    return {"contacts": preview["sample"], "count": preview["count"], "total": total}


def criteria_editor(*, tenant, field, subject, text, empty_message="", subject_input=False, departed_input=None):
    """Everything the criteria editor include needs for one criteria field of a form.

    With `subject_input` the live check sends the form's subject choice along, so it follows the choice. With
    `departed_input`, the form's "also watch accounts in a terminal stage" box, the check sends the box along
    and counts the departed accounts only when it is ticked.
    """
    return {
        "field": field,
        "subject": subject,
        "subject_input": subject_input,
        "departed_input": departed_input,
        "feedback": subject_feedback(
            tenant=tenant, text=text, subject=subject,
            customers_only=departed_input is not None and not departed_input.value(),
        ),
        "fields": fields_for(subject, tenant),
        "empty_message": empty_message,
    }


@require_POST
@settings_page
def criteria_preview(request):
    """The live check (htmx) of one criteria field, for accounts or contacts."""
    field = request.GET.get("field")
    chosen = request.POST.get("subject", request.GET.get("subject"))
    subject = Subject.CONTACT if chosen == Subject.CONTACT else Subject.ACCOUNT
    text = request.POST.get(field, "") if field in CHECKED_FIELDS else ""
    # The editor of a form with the box sends its name; a box left unticked is not sent at all.
    departed_box = request.GET.get("departed")
    customers_only = departed_box in DEPARTED_BOXES and not request.POST.get(departed_box)
    context = {
        "feedback": subject_feedback(tenant=request.tenant, text=text, subject=subject, customers_only=customers_only),
        "empty_message": request.GET.get("empty", ""),
    }
    return render(request, "settings/alerts/_criteria_check.html", context)


# Segments --------------------------------------------------------------------


@settings_page
def segments(request):
    rows = []
    for segment in Segment.objects.for_tenant(request.tenant).annotate(
        members=Count("memberships", filter=Q(memberships__left_at__isnull=True))
    ):
        try:
            matching = segment_live_members(tenant=request.tenant, segment=segment).count()
        except CriteriaError:
            matching = None
        rows.append((segment, matching))
    return render(request, "settings/alerts/segments.html", {"rows": rows})


@settings_page
def segment_edit(request, pk=None):
    segment = get_object_or_404(Segment.objects.for_tenant(request.tenant), pk=pk) if pk else None
    initial = SegmentForm.initial_for(segment) if segment else None
    form = SegmentForm(posted(request), initial=initial, editing=segment is not None)
    if request.method == "POST" and request.POST.get("action") != "check" and form.is_valid():
        try:
            if segment is None:
                segment = segment_create(tenant=request.tenant, actor=request.user, **form.cleaned_data)
                messages.success(request, f"Added the segment {segment.name}; its members are being filled in.")
            else:
                segment_update(tenant=request.tenant, segment=segment, actor=request.user, **form.cleaned_data)
                messages.success(request, f"Saved the segment {segment.name}.")
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return back(request, "settings-segments")
    subject = segment.subject if segment else form.data.get("subject", Subject.ACCOUNT)
    editor = criteria_editor(
        tenant=request.tenant,
        field=form["criteria_text"],
        subject=subject,
        text=form["criteria_text"].value(),
        subject_input=segment is None,
    )
    return render(request, "settings/alerts/segment_form.html", {"form": form, "segment": segment, "editor": editor})


@settings_page
def segment_members(request, pk):
    segment = get_object_or_404(Segment.objects.for_tenant(request.tenant), pk=pk)
    members = (
        SegmentMembership.objects.for_tenant(request.tenant)
        .current()
        .filter(segment=segment)
        .select_related("account", "contact")
        .order_by("account__name", "pk")
    )
    page = Paginator(members, MEMBERS_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "settings/alerts/segment_members.html", {"segment": segment, "page": page})


@require_POST
@settings_page
def segment_remove(request, pk):
    segment = get_object_or_404(Segment.objects.for_tenant(request.tenant), pk=pk)
    segment_delete(tenant=request.tenant, segment=segment, actor=request.user)
    messages.success(request, f"Deleted the segment {segment.name}.")
    return back(request, "settings-segments")


# Alert rules -----------------------------------------------------------------


@settings_page
def alert_rules(request):
    rules = AlertRule.objects.for_tenant(request.tenant).annotate(
        active=Count("alerts", filter=Q(alerts__status__in=("open", "acknowledged")))
    )
    missing = [entry for _, entry in starters_missing(request.tenant)]
    starters = [
        {"name": entry["name"], "criteria": entry.get("criteria_text") or entry["condition_text"]} for entry in missing
    ]
    # The stages they name, in library order, for the note that they fit those stages.
    stages = list(dict.fromkeys(stage for entry in missing for stage in entry["stages"]))
    return render(request, "settings/alerts/rules.html", {"rules": rules, "starters": starters, "stages": stages})


@require_POST
@settings_page
def alert_rules_starter(request):
    created, refused = starter_alerts_install(tenant=request.tenant, actor=request.user)
    if created:
        messages.success(request, f"Added {', '.join(str(obj) for obj in created)}.")
    for key, reason in refused.items():
        messages.error(request, f"Did not add {key}: {reason}")
    return back(request, "settings-alert-rules")


@settings_page
def alert_rule_edit(request, pk=None):
    rule = get_object_or_404(AlertRule.objects.for_tenant(request.tenant), pk=pk) if pk else None
    initial = AlertRuleForm.initial_for(rule) if rule else None
    form = AlertRuleForm(posted(request), initial=initial, editing=rule is not None)
    if request.method == "POST" and request.POST.get("action") != "check" and form.is_valid():
        try:
            if rule is None:
                rule = alert_rule_create(tenant=request.tenant, actor=request.user, **form.cleaned_data)
                messages.success(request, f"Added the alert rule {rule.name}.")
            else:
                alert_rule_update(tenant=request.tenant, rule=rule, actor=request.user, **form.cleaned_data)
                messages.success(request, f"Saved the alert rule {rule.name}.")
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return back(request, "settings-alert-rules")
    editor = criteria_editor(
        tenant=request.tenant,
        field=form["condition_text"],
        subject=Subject.ACCOUNT,
        text=form["condition_text"].value(),
        departed_input=form["include_terminal_stages"],
    )
    return render(request, "settings/alerts/rule_form.html", {"form": form, "rule": rule, "editor": editor})


def _rule(request, pk):
    return get_object_or_404(AlertRule.objects.for_tenant(request.tenant), pk=pk)


@require_POST
@settings_page
def alert_rule_toggle(request, pk):
    rule = _rule(request, pk)
    enabled = request.POST.get("enabled") == "1"
    try:
        alert_rule_update(tenant=request.tenant, rule=rule, actor=request.user, enabled=enabled)
    except ValidationError as exc:
        messages.error(request, f"{rule.name} needs fixing first: {' '.join(exc.messages)}")
    else:
        messages.success(request, f"{'Enabled' if enabled else 'Disabled'} the alert rule {rule.name}.")
    return back(request, "settings-alert-rules")


@require_POST
@settings_page
def alert_rule_remove(request, pk):
    rule = _rule(request, pk)
    alert_rule_delete(tenant=request.tenant, rule=rule, actor=request.user)
    messages.success(request, f"Deleted the alert rule {rule.name}; its past alerts stay in the history.")
    return back(request, "settings-alert-rules")


# Webhooks ----------------------------------------------------------------------


@settings_page
def webhooks(request):
    form = WebhookForm(posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            subscription, secret = webhook_subscription_create(
                tenant=request.tenant, actor=request.user, **form.cleaned_data
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            request.session[NEW_SECRET_SESSION] = {"id": subscription.pk, "secret": secret}
            return back(request, "settings-webhook", subscription.pk)
    subscriptions = WebhookSubscription.objects.for_tenant(request.tenant)
    return render(request, "settings/alerts/webhooks.html", {"form": form, "subscriptions": subscriptions})


def _subscription(request, pk):
    return get_object_or_404(WebhookSubscription.objects.for_tenant(request.tenant), pk=pk)


@never_cache
@settings_page
def webhook_detail(request, pk):
    """An endpoint, the form that changes its address, description and events, and its delivery log; right after
    creation or rotation, its secret, shown this once."""
    subscription = _subscription(request, pk)
    initial = {name: getattr(subscription, name) for name in WebhookForm.base_fields}
    form = WebhookForm(posted(request), initial=initial)
    if request.method == "POST" and form.is_valid():
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        try:
            if changes:
                webhook_subscription_update(
                    tenant=request.tenant, subscription=subscription, actor=request.user, **changes
                )
                messages.success(request, f"Saved the endpoint {subscription.url}.")
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return back(request, "settings-webhook", subscription.pk)
    pending = request.session.get(NEW_SECRET_SESSION)
    secret = None
    if pending and pending["id"] == subscription.pk:
        secret = pending["secret"]
        del request.session[NEW_SECRET_SESSION]
    deliveries = WebhookDelivery.objects.for_tenant(request.tenant).filter(subscription=subscription)
    # A filter the form refuses shows its error beside it and filters nothing; the valid ones still apply.
    log_filter = WebhookDeliveryFilterSet(request.GET, queryset=deliveries)
    page = Paginator(log_filter.qs, MEMBERS_PAGE_SIZE).get_page(request.GET.get("page"))
    for delivery in page:
        delivery.body_text = as_json(event_envelope(delivery, request.tenant.slug))
    failed = deliveries.filter(status=DeliveryStatus.FAILED).count()
    context = {
        "subscription": subscription, "secret": secret, "page": page, "form": form, "failed": failed,
        "log_filter": log_filter.form, "log_filtered": any(log_filter.form.cleaned_data.values()),
    }
    return render(request, "settings/alerts/webhook_detail.html", context)


@require_POST
@settings_page
def webhook_rotate(request, pk):
    subscription = _subscription(request, pk)
    secret = webhook_secret_rotate(tenant=request.tenant, subscription=subscription, actor=request.user)
    request.session[NEW_SECRET_SESSION] = {"id": subscription.pk, "secret": secret}
    messages.success(request, "Rotated the secret: deliveries from now on are signed with the new one.")
    return back(request, "settings-webhook", subscription.pk)


@require_POST
@settings_page
def webhook_toggle(request, pk):
    subscription = _subscription(request, pk)
    active = request.POST.get("active") == "1"
    webhook_subscription_update(tenant=request.tenant, subscription=subscription, actor=request.user, active=active)
    messages.success(request, f"{'Enabled' if active else 'Disabled'} deliveries to {subscription.url}.")
    return back(request, "settings-webhook", subscription.pk)


@require_POST
@settings_page
def webhook_retry(request, pk):
    """Send failed deliveries again: the one of a row's button, or every failed one of the endpoint."""
    subscription = _subscription(request, pk)
    form = RetryDeliveriesForm(request.POST)
    if not form.is_valid():
        tell_form_errors(request, form)
        return back(request, "settings-webhook", subscription.pk)
    ids = webhook_deliveries_retry(
        tenant=request.tenant, subscription=subscription, actor=request.user,
        delivery_ids=form.cleaned_data["delivery"] or None,
    )
    count = f"{len(ids)} failed deliver{pluralize(len(ids), 'y,ies')}"
    if not ids:
        messages.error(request, "No failed delivery to send again: each was sent or is still being tried.")
    elif subscription.active:
        messages.success(request, f"Sending {count} again; the log below shows how each goes.")
    else:
        messages.success(request, f"Queued {count} again: they are sent once the endpoint is enabled.")
    return back(request, "settings-webhook", subscription.pk)


@require_POST
@settings_page
def webhook_test(request, pk):
    subscription = _subscription(request, pk)
    delivery = webhook_send_test(tenant=request.tenant, subscription=subscription)
    messages.success(request, f"Queued a test event ({delivery.event_id}); its result appears in the log below.")
    return back(request, "settings-webhook", subscription.pk)


@require_POST
@settings_page
def webhook_remove(request, pk):
    subscription = _subscription(request, pk)
    webhook_subscription_delete(tenant=request.tenant, subscription=subscription, actor=request.user)
    messages.success(request, f"Deleted the endpoint {subscription.url}.")
    return back(request, "settings-webhooks")
