"""Building blocks of the pages that show accounts, and the pages that change a note.

The dashboard pages themselves live where every app they read is below them
(csplatform.dashboard for the portfolio, the account page and its notes, whose
form tells teammates; lifecycle.views for the board), since a lower app never
imports a higher one. These helpers read only customer data.
"""

import datetime as dt

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Case, OuterRef, Subquery, Sum, When
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from csplatform.tenancy.decorators import (
    back_to,
    can_change,
    object_to_change,
    tell_form_errors,
    tenant_page,
)
from csplatform.tenancy.models import Role, User

from .forms import AccountDetailsForm, ContactEditForm, NoteAddForm, NoteForm, OwnerAssignForm, SavedViewForm
from .models import Account, AccountNote, Contact, ContactRole, DailyRollup, SavedView, UsageEvent
from .services import (
    account_update,
    accounts_assign_owner,
    contact_delete,
    contact_update,
    note_delete,
    note_editable_by,
    note_update,
    saved_view_delete,
    saved_view_save,
)

RECENT_EVENTS = 25
ACTIVITY_DAYS = 30
# The account page shows the pinned and latest notes; the notes page pages through all of them.
NOTES_SHOWN = 5
NOTES_PER_PAGE = 50


def with_last_activity(accounts, tenant):
    """Annotate each account with its latest event time.

    A correlated subquery that reads one row of the (tenant, account,
    -timestamp) index per account, so the page stays one query.
    """
    latest = (
        UsageEvent.objects.for_tenant(tenant)
        .filter(account=OuterRef("pk"))
        .order_by("-timestamp")
        .values("timestamp")[:1]
    )
    return accounts.annotate(last_activity=Subquery(latest))


def sort_headers(columns, current):
    """Each column's header link target and aria-sort state; `columns` are (key, label, descending first)."""
    headers = []
    for key, label, descending_first in columns:
        if current == key:
            state, next_sort = "ascending", f"-{key}"
        elif current == f"-{key}":
            state, next_sort = "descending", key
        else:
            state, next_sort = None, f"-{key}" if descending_first else key
        headers.append({"key": key, "label": label, "state": state, "next_sort": next_sort})
    return headers


def usage_per_day(tenant, account, today, days=ACTIVITY_DAYS):
    """Events and distinct active contacts per day for the last `days` days, oldest first (one query)."""
    first_day = today - dt.timedelta(days=days - 1)
    rows = (
        DailyRollup.objects.for_tenant(tenant)
        .filter(account=account, day__gte=first_day, day__lte=today)
        .values("day", "contact_ref")
        .annotate(total=Sum("count"))
        .order_by()
    )
    events, contacts = {}, {}
    for row in rows:
        events[row["day"]] = events.get(row["day"], 0) + row["total"]
        if row["contact_ref"]:
            contacts[row["day"]] = contacts.get(row["day"], 0) + 1
    result = []
    for offset in range(days):
        day = first_day + dt.timedelta(days=offset)
        result.append({"day": day, "events": events.get(day, 0), "active_contacts": contacts.get(day, 0)})
    return result


def account_contacts(tenant, account):
    """The account's contacts, its champions first: the people the team speaks to before anyone else."""
    champions_first = Case(When(role=ContactRole.CHAMPION, then=0), default=1)
    return Contact.objects.for_tenant(tenant).filter(account=account).order_by(champions_first, "role", "name", "id")


def recent_events(tenant, account, limit=RECENT_EVENTS):
    return (
        UsageEvent.objects.for_tenant(tenant)
        .filter(account=account)
        .select_related("contact")
        .order_by("-timestamp")[:limit]
    )


# Notes


def account_notes(tenant, account):
    return AccountNote.objects.for_tenant(tenant).filter(account=account).select_related("author")


def may_edit(request, note):
    return can_change(request) and note_editable_by(note, user=request.user, role=request.membership.role)


def with_edit_rights(request, notes):
    """The notes as a list, each marked `editable` when the member may change it."""
    notes = list(notes)
    for note in notes:
        note.editable = may_edit(request, note)
    return notes


def teammates_of(request, members):
    """The members (users) other than the one making the request: whom a note can tell."""
    return [member for member in members if member.pk != request.user.pk]


def account_notes_context(request, account, members):
    """The account page's notes: the pinned and latest few, how many in all, and the form to add one."""
    notes = account_notes(request.tenant, account)
    shown = notes[: NOTES_SHOWN + 1]
    total = len(shown) if len(shown) <= NOTES_SHOWN else notes.count()
    return {
        "notes": with_edit_rights(request, shown[:NOTES_SHOWN]),
        "notes_total": total,
        "note_form": NoteAddForm.blank(teammates_of(request, members)),
    }


def notes_url(tenant, account):
    return reverse("account-notes", kwargs={"tenant_slug": tenant.slug, "account_id": account.pk})


def _editable_note(request, account_id, note_id):
    """The note, 404 outside the tenant or the account, 403 when the member may not change it."""
    note = get_object_or_404(
        AccountNote.objects.for_tenant(request.tenant).select_related("account", "author"),
        pk=note_id,
        account_id=account_id,
    )
    if not may_edit(request, note):
        raise PermissionDenied("Only the note's author or an admin can change it.")
    return note


@tenant_page
def account_note_edit(request, account_id, note_id):
    tenant = request.tenant
    note = _editable_note(request, account_id, note_id)
    form = NoteForm(request.POST or None, initial={"body": note.body, "pinned": note.pinned})
    if request.method == "POST" and form.is_valid():
        note_update(tenant=tenant, note=note, body=form.cleaned_data["body"], pinned=form.cleaned_data["pinned"])
        messages.success(request, "Note saved.")
        return redirect(back_to(request, notes_url(tenant, note.account)))
    status = 400 if form.is_bound else 200
    return render(request, "customers/note_edit.html", {"note": note, "form": form}, status=status)


@tenant_page
@require_POST
def account_note_delete(request, account_id, note_id):
    tenant = request.tenant
    note = _editable_note(request, account_id, note_id)
    note_delete(tenant=tenant, note=note)
    messages.success(request, "Note deleted.")
    return redirect(back_to(request, notes_url(tenant, note.account)))


# Owners


def can_assign(request):
    """Admins hand out the accounts; CSMs work the ones they are given."""
    return request.membership.role == Role.ADMIN


def account_owner_context(request, members):
    """For admins, the members (a queryset of them) an account can be given to."""
    return {"owner_choices": list(members) if can_assign(request) else None}


@tenant_page
@require_POST
def accounts_assign(request):
    """Give the posted accounts (one from the account page, several from the portfolio) to a member or nobody."""
    tenant = request.tenant
    portfolio = reverse("portfolio", kwargs={"tenant_slug": tenant.slug})
    if not can_assign(request):
        raise PermissionDenied("Only admins assign accounts to owners.")
    form = OwnerAssignForm(request.POST, members=User.objects.members_of(tenant))
    if not form.is_valid():
        tell_form_errors(request, form)
        return redirect(back_to(request, portfolio))
    owner = form.cleaned_data["owner"]
    try:
        changed = accounts_assign_owner(
            tenant=tenant, account_ids=form.cleaned_data["account"], owner=owner, actor=request.user
        )
    except ValidationError as exc:  # the member left between the form's read and the write
        messages.error(request, " ".join(exc.messages))
        return redirect(back_to(request, portfolio))
    accounts = f"{changed} account{'s' if changed != 1 else ''}"
    messages.success(request, f"{accounts} given to {owner}." if owner else f"{accounts} left unassigned.")
    return redirect(back_to(request, portfolio))


# Details


@tenant_page
def account_details(request, account_id):
    """Correct an account's name, plan, revenue and dates by hand; editors only. The account is recomputed."""
    tenant = request.tenant
    account = object_to_change(request, Account.objects.for_tenant(tenant), account_id)
    name = account.name
    form = AccountDetailsForm(request.POST or None, instance=account)
    if request.method == "POST" and form.is_valid():
        if form.has_changed():
            fields = {name: form.cleaned_data[name] for name in form.changed_data}
            account_update(tenant=tenant, account=account, fields=fields, actor=request.user)
            messages.success(request, f"Saved the details of {account}.")
        return redirect("account-detail", tenant_slug=tenant.slug, account_id=account.pk)
    status = 400 if form.is_bound else 200
    return render(request, "customers/account_details.html", {"account": account, "name": name, "form": form},
                  status=status)


# Contacts


@tenant_page
@require_POST
def account_contact_edit(request, account_id, contact_id):
    """Change a contact's title, role or email consent from the account page; the account is recomputed."""
    tenant = request.tenant
    contact = object_to_change(request, Contact.objects.for_tenant(tenant).filter(account_id=account_id), contact_id)
    form = ContactEditForm(request.POST, instance=contact)
    if form.is_valid():
        contact_update(tenant=tenant, contact=contact, fields=form.cleaned_data, actor=request.user)
        messages.success(request, f"Saved {contact}.")
    else:
        problems = " ".join(f"{form[name].label}: {' '.join(errors)}" for name, errors in form.errors.items())
        messages.error(request, f"{contact} was not changed. {problems}")
    return redirect("account-detail", tenant_slug=tenant.slug, account_id=contact.account_id)


@tenant_page
@require_POST
def account_contact_remove(request, account_id, contact_id):
    """Remove a contact who left the customer; the account's activity keeps its removal and its changes."""
    tenant = request.tenant
    contact = object_to_change(request, Contact.objects.for_tenant(tenant).filter(account_id=account_id), contact_id)
    contact_delete(tenant=tenant, contact=contact, actor=request.user)
    messages.success(request, f"Removed {contact}. The account's activity keeps what it had.")
    return redirect("account-detail", tenant_slug=tenant.slug, account_id=account_id)


# Saved views of the portfolio


def member_saved_views(request):
    """The member's own saved portfolio views, by name."""
    return list(SavedView.objects.for_tenant(request.tenant).filter(user=request.user))


@tenant_page
@require_POST
def saved_view_add(request):
    """Save the portfolio's filters, scope and sort under a name, then show them; any member keeps their own."""
    tenant = request.tenant
    portfolio = reverse("portfolio", kwargs={"tenant_slug": tenant.slug})
    form = SavedViewForm(request.POST)
    if not form.is_valid():
        tell_form_errors(request, form)
        return redirect(portfolio)
    try:
        view, created = saved_view_save(
            tenant=tenant, user=request.user, name=form.cleaned_data["name"], query=form.cleaned_data["query"]
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(portfolio)
    messages.success(request, f"{'Saved' if created else 'Updated'} the view {view.name}.")
    return redirect(f"{portfolio}?{view.query}" if view.query else portfolio)


@tenant_page
@require_POST
def saved_view_remove(request, view_id):
    """Delete one of the member's own saved views (another's, or another tenant's, is not found)."""
    view = get_object_or_404(SavedView.objects.for_tenant(request.tenant).filter(user=request.user), pk=view_id)
    saved_view_delete(tenant=request.tenant, view=view)
    messages.success(request, f"Deleted the view {view.name}.")
    return redirect(back_to(request, reverse("portfolio", kwargs={"tenant_slug": request.tenant.slug})))
