"""The CSM dashboard pages that bring every app's data together: the portfolio, its CSV file, the account page
and its notes.

They sit above the apps, beside the URLs that route to them, so that each app's
own views read only that app and the ones below it. Every page runs a fixed
number of queries whatever the number of accounts.
"""

import datetime as dt

import django_filters
from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from alerts.models import Segment, SegmentMembership, Subject
from alerts.notifications import note_tell
from alerts.views import account_alerts_context, account_segments_context
from csplatform.activity import KINDS, Cursor, account_activity
from csplatform.customers.filtersets import AccountFilterSet
from csplatform.customers.forms import ContactAddForm, NoteAddForm
from csplatform.customers.models import Account, ContactRole, SavedView
from csplatform.customers.services import contact_create, note_add
from csplatform.customers.views import (
    NOTES_PER_PAGE,
    account_contacts,
    account_notes,
    account_notes_context,
    account_owner_context,
    can_assign,
    member_saved_views,
    notes_url,
    recent_events,
    sort_headers,
    teammates_of,
    usage_per_day,
    with_edit_rights,
)
from csplatform.tenancy.decorators import back_to, can_change, object_to_change, refuse_viewers, tenant_page
from csplatform.tenancy.models import User
from csplatform.tenancy.summaries import tenant_summaries_forget, tenant_summary
from csplatform.tenancy.timezones import tenant_today
from health.exports import portfolio_csv_lines
from health.forms import HealthOverrideForm
from health.models import Colour
from health.reports import ACCENT
from health.services import health_override_clear, health_override_set
from health.views import (
    SPARK_DAYS,
    health_context,
    health_kept_since_leaving,
    portfolio_accounts,
    portfolio_figures,
    portfolio_summary,
    snapshot_scores,
    sparkline,
)
from lifecycle.selectors import stages_in_order
from lifecycle.views import account_lifecycle_context
from playbooks.models import Playbook
from playbooks.pages import account_playbooks_context

PORTFOLIO_PAGE_SIZE = 25
ACTIVITY_PAGE_SIZE = 50
# The account page lists this many contacts; the API pages through all of them.
CONTACTS_SHOWN = 50

# (sort key, header, whether the first click sorts high-to-low)
PORTFOLIO_COLUMNS = [
    ("name", "Account", False),
    ("stage", "Stage", False),
    ("days", "Days in stage", True),
    ("health", "Health", False),
    ("delta", "Δ 30 days", False),
    ("mrr", "MRR", True),
    ("renewal", "Renewal", False),
    ("owner", "Owner", False),
    ("activity", "Last activity", True),
]
FILTER_PARAMS = ("q", "customers", "stage", "health", "plan", "owner", "renewal", "segment")


class PortfolioFilterSet(AccountFilterSet):
    """The account filters with one more, by segment, which the customers app below the segments cannot offer.

    `segments` are the tenant's own; a contact segment lists the accounts with a contact in it.
    """

    segment = django_filters.ChoiceFilter(label="Segment", empty_label="Any segment", method="filter_segment")

    class Meta(AccountFilterSet.Meta):
        fields = [*AccountFilterSet.Meta.fields, "segment"]

    def __init__(self, data=None, queryset=None, *, segments, **kwargs):
        super().__init__(data, queryset, **kwargs)
        self.segment_ids = {}
        choices = []
        for segment in segments:
            self.segment_ids[segment.key] = segment.pk
            label = f"{segment.name} (contacts)" if segment.subject == Subject.CONTACT else segment.name
            choices.append((segment.key, label))
        self.filters["segment"].extra["choices"] = choices

    def filter_segment(self, queryset, name, value):
        stays = SegmentMembership.objects.for_tenant(self.tenant).current()
        return queryset.filter(Exists(stays.filter(segment_id=self.segment_ids[value], account_id=OuterRef("pk"))))


def portfolio_listing(tenant, params, user):
    """What the portfolio page, its CSV file and the portfolio API share: the stages, the whole-portfolio figures,
    the rows' queryset and the filterset of the query's `params` ("my accounts" being `user`'s; its `today` is the
    tenant's)."""
    stages = stages_in_order(tenant=tenant)
    figures = tenant_summary(tenant, "portfolio", lambda: portfolio_figures(tenant))
    accounts = portfolio_accounts(tenant)
    filterset = PortfolioFilterSet(
        params,
        accounts,
        tenant=tenant,
        user=user,
        today=tenant_today(tenant),
        stages=[(stage.key, stage.name) for stage in stages],
        colours=Colour.choices,
        plans=figures["plans"],
        segments=Segment.objects.for_tenant(tenant).only("pk", "key", "name", "subject"),
    )
    return stages, figures, accounts, filterset


@tenant_page
def portfolio(request):
    tenant = request.tenant
    stages, figures, accounts, filterset = portfolio_listing(tenant, request.GET, request.user)
    today = filterset.today
    summary = portfolio_summary(figures, stages)
    filters_active = any(request.GET.get(name) for name in FILTER_PARAMS)
    paginator = Paginator(filterset.qs.values_list("pk", flat=True), PORTFOLIO_PAGE_SIZE)
    if not filters_active and request.GET.get("scope") != "mine":
        # Every account is listed: the summary's total spares counting them all again.
        paginator.count = summary["total"]
    page = paginator.get_page(request.GET.get("page"))
    # The page's ids first, then its rows in full: the joins and the last activity are read for these
    # rows only, not for every row a later page skips.
    ids = list(page.object_list)
    rows = {account.pk: account for account in accounts.filter(pk__in=ids)}
    page.object_list = [rows[pk] for pk in ids if pk in rows]
    first_day = today - dt.timedelta(days=SPARK_DAYS - 1)
    scores = snapshot_scores(tenant, [account.pk for account in page], first_day, today)
    for account in page:
        account.spark = sparkline(scores.get(account.pk, {}), first_day, SPARK_DAYS)
    context = {
        "filterset": filterset,
        "page": page,
        "headers": sort_headers(PORTFOLIO_COLUMNS, request.GET.get("sort", "")),
        "sort": request.GET.get("sort", ""),
        "scope": request.GET.get("scope") or "all",
        "filters_active": filters_active,
        "summary": summary,
        "spark_days": SPARK_DAYS,
        "stages": stages,
        "current_stage": request.GET.get("stage", ""),
        "current_health": request.GET.get("health", ""),
        "assign_to": filterset.members if can_assign(request) else None,
        "saved_views": member_saved_views(request),
        "current_query": SavedView.query_of(request.GET),
        # The playbooks an editor may start for the ticked accounts; read only for those who may.
        "start_playbooks": list(Playbook.objects.for_tenant(tenant).only("pk", "name", "enabled"))
        if can_change(request)
        else [],
    }
    return render(request, "customers/portfolio.html", context)


@tenant_page
def portfolio_export(request):
    """The portfolio's accounts as a CSV file, with the page's filters, scope and sort, every page of them."""
    tenant = request.tenant
    _, _, accounts, filterset = portfolio_listing(tenant, request.GET, request.user)
    if not filterset.is_valid():
        # A filter the page would show as an error is not left out of the file in silence.
        problems = [f"{name}: {' '.join(errors)}" for name, errors in filterset.errors.items()]
        return HttpResponseBadRequest(
            "\n".join(["The filters are not valid, so nothing was exported.", *problems]) + "\n",
            content_type="text/plain; charset=utf-8",
        )
    ids = list(filterset.qs.values_list("pk", flat=True))
    # One reverse() for the whole file: each row's address is this one with the row's id for the 0.
    account_prefix = request.build_absolute_uri(reverse("account-detail", args=[tenant.slug, 0])).removesuffix("0/")
    response = StreamingHttpResponse(
        # In the page's time zone, which the stream would no longer find active.
        portfolio_csv_lines(
            tenant, accounts, ids, lambda pk: f"{account_prefix}{pk}/", timezone.get_current_timezone()
        ),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{tenant.slug}-accounts-{filterset.today.isoformat()}.csv"'
    return response


def usage_chart(rows):
    """Chart.js config for events per day (bars) and active contacts (line)."""
    return {
        "type": "bar",
        "data": {
            "labels": [row["day"].strftime("%b %-d") for row in rows],
            "datasets": [
                {"label": "Events", "data": [row["events"] for row in rows], "backgroundColor": ACCENT, "yAxisID": "y"},
                {
                    "type": "line",
                    "label": "Active contacts",
                    "data": [row["active_contacts"] for row in rows],
                    "borderColor": "#b35c00",
                    "backgroundColor": "#b35c00",
                    "yAxisID": "contacts",
                },
            ],
        },
        "options": {
            "scales": {
                "y": {"beginAtZero": True, "title": {"display": True, "text": "Events"}},
                "contacts": {
                    "beginAtZero": True,
                    "position": "right",
                    "grid": {"drawOnChartArea": False},
                    "ticks": {"precision": 0},
                    "title": {"display": True, "text": "Active contacts"},
                },
            }
        },
    }


def account_page(request, account_id, *, override_form=None, contact_form=None, status=200):
    tenant = request.tenant
    today = tenant_today(tenant)
    account = get_object_or_404(
        Account.objects.for_tenant(tenant).select_related("owner", "health", "health__override_by"), pk=account_id
    )
    usage = usage_per_day(tenant, account, today)
    contacts = list(account_contacts(tenant, account)[: CONTACTS_SHOWN + 1])
    # One read of the members serves the task form and the owner choice: the queryset keeps its rows.
    members = User.objects.members_of(tenant)
    lifecycle = account_lifecycle_context(request, account)
    context = {
        **health_context(request, account, today, override_form=override_form),
        **lifecycle,
        "health_kept": health_kept_since_leaving(tenant, account, lifecycle["state"]),
        **account_alerts_context(request, account),
        **account_segments_context(request, account),
        **account_playbooks_context(request, account, members),
        **account_notes_context(request, account, members),
        **account_owner_context(request, members),
        "contacts": contacts[:CONTACTS_SHOWN],
        "contact_form": contact_form or ContactAddForm(tenant=tenant),
        "contacts_more": len(contacts) > CONTACTS_SHOWN,
        # Champions come first, so the first contact tells.
        "has_champion": bool(contacts) and contacts[0].role == ContactRole.CHAMPION,
        "contact_roles": ContactRole.choices,
        "events": recent_events(tenant, account),
        "usage": usage,
        "usage_chart": usage_chart(usage),
        "usage_days": len(usage),
        "has_usage": any(row["events"] for row in usage),
    }
    return render(request, "customers/account_detail.html", context, status=status)


@tenant_page
def account_detail(request, account_id):
    return account_page(request, account_id)


@tenant_page
def account_notes_page(request, account_id):
    """Every note on the account, pinned first, then newest first; a POST adds one and tells the teammates ticked.

    An invalid note comes back on this page with its text and the reason,
    whichever page its form was on.
    """
    tenant = request.tenant
    account = get_object_or_404(Account.objects.for_tenant(tenant), pk=account_id)
    teammates = teammates_of(request, User.objects.members_of(tenant))
    form, status = NoteAddForm.blank(teammates), 200
    if request.method == "POST":
        refuse_viewers(request)
        form = NoteAddForm(request.POST, teammates=teammates)
        if form.is_valid():
            data, told = form.cleaned_data, form.told()
            with transaction.atomic():
                note = note_add(
                    tenant=tenant,
                    account=account,
                    author=request.user,
                    body=data["body"],
                    pinned=data["pinned"],
                    key=f"page:{data['token']}",
                )
                note_tell(tenant=tenant, note=note, users=told)
            messages.success(request, f"Note added; {names(told)} told." if told else "Note added.")
            return redirect(back_to(request, notes_url(tenant, account)))
        status = 400
    page = Paginator(account_notes(tenant, account), NOTES_PER_PAGE).get_page(request.GET.get("page"))
    page.object_list = with_edit_rights(request, page.object_list)
    context = {"account": account, "page": page, "note_form": form, "can_change": can_change(request)}
    return render(request, "customers/account_notes.html", context, status=status)


def names(users):
    """The users named as a sentence does: "Ann", "Ann and Bo", "Ann, Bo and Cy"."""
    named = [str(user) for user in users]
    return " and ".join(filter(None, [", ".join(named[:-1]), named[-1]]))


@tenant_page
@require_POST
def account_health_override(request, account_id):
    """Set or remove the account's health override; CSMs and admins only."""
    tenant = request.tenant
    account = object_to_change(request, Account.objects.for_tenant(tenant), account_id)
    if request.POST.get("action") == "clear":
        if health_override_clear(tenant=tenant, account=account, actor=request.user):
            tenant_summaries_forget(tenant)
            messages.success(request, "The override is removed; the computed health shows again.")
        return redirect("account-detail", tenant_slug=tenant.slug, account_id=account.pk)
    form = HealthOverrideForm(request.POST)
    if not form.is_valid():
        return account_page(request, account.pk, override_form=form, status=400)
    health_override_set(
        tenant=tenant,
        account=account,
        actor=request.user,
        reason=form.cleaned_data["reason"],
        score=form.cleaned_data["score"],
        colour=form.cleaned_data["colour"],
        expires_at=form.expires_at(),
    )
    tenant_summaries_forget(tenant)
    messages.success(request, "Health override saved.")
    return redirect("account-detail", tenant_slug=tenant.slug, account_id=account.pk)


@tenant_page
@require_POST
def account_contact_add(request, account_id):
    """Add a person the team met to the account; an invalid form comes back on the account page with the reasons
    and what was typed."""
    tenant = request.tenant
    account = object_to_change(request, Account.objects.for_tenant(tenant), account_id)
    form = ContactAddForm(request.POST, tenant=tenant)
    if form.is_valid():
        fields = {**form.cleaned_data, "account": account, "external_id": form.cleaned_data["email"]}
        try:
            contact = contact_create(tenant=tenant, fields=fields, actor=request.user)
        except IntegrityError:
            # Added by someone else since the form was checked.
            form.add_error("email", "A contact with this email was added meanwhile.")
        else:
            messages.success(request, f"Added {contact} to the contacts.")
            return redirect(reverse("account-detail", args=[tenant.slug, account.pk]) + "#contacts-heading")
    return account_page(request, account.pk, contact_form=form, status=400)


class ActivityForm(forms.Form):
    """The account activity page's query: which kinds of events, and from where on (the page's own link)."""

    kind = forms.MultipleChoiceField(
        label="Show", choices=list(KINDS.items()), required=False, widget=forms.CheckboxSelectMultiple
    )
    before = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean_before(self):
        text = self.cleaned_data["before"]
        if not text:
            return None
        try:
            return Cursor.parse(text)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


@tenant_page
def account_activity_page(request, account_id):
    """Everything recorded about the account, newest first, a page at a time; filtered by kind."""
    tenant = request.tenant
    account = get_object_or_404(Account.objects.for_tenant(tenant), pk=account_id)
    form = ActivityForm(request.GET)
    context = {"account": account, "form": form, "entries": [], "more": False}
    if not form.is_valid():
        return render(request, "customers/account_activity.html", context, status=400)
    kinds = form.cleaned_data["kind"]
    context["entries"], context["more"] = account_activity(
        tenant=tenant, account=account, kinds=kinds, cursor=form.cleaned_data["before"],
        limit=ACTIVITY_PAGE_SIZE,
    )
    context["filtered"] = bool(kinds)
    # The next page starts after this one's last entry.
    context["older"] = context["entries"][-1].cursor if context["more"] else None
    return render(request, "customers/account_activity.html", context)
