"""Dashboard pages of playbooks: my tasks, the outbox, and the account page's playbook section.

(playbooks/views.py is the public NPS answer page; these are the signed-in ones.)
Actions answer an htmx request with the changed row and a plain form post
with a redirect back, so each works without JavaScript.
"""

import datetime as dt
import uuid

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from alerts.models import Alert, AlertStatus
from alerts.services import alerts_acknowledge
from alerts.views import alert_row_answer
from csplatform.customers.forms import IdListField, TickedAccountsField
from csplatform.customers.models import Account
from csplatform.tenancy.decorators import (
    QueryChoices,
    back_to,
    can_change,
    form_errors_text,
    is_htmx,
    object_to_change,
    row_action_answer,
    tell_bulk_outcome,
    tell_form_errors,
    tenant_page,
    ticked_rows_action,
)
from csplatform.tenancy.models import Role, User
from csplatform.tenancy.timezones import local_day_start

from .models import EmailStatus, ExpansionOpportunity, OutboundEmail, Playbook, Run, StepKind, StepRun, Task
from .services import (
    outbox_approve,
    outbox_decide_many,
    outbox_edit,
    outbox_skip,
    run_cancel,
    run_start,
    runs_start_by_hand,
    task_change,
    task_complete,
    task_create_once,
    tasks_complete,
)

TASKS_SHOWN = 200
OUTBOX_PAGE_SIZE = 50
ACCOUNT_RUNS_SHOWN = 10
ACCOUNT_EMAILS_SHOWN = 20
ACCOUNT_OPPORTUNITIES_SHOWN = 10
OUTBOX_KINDS = (("email", "Emails"), ("demo", "Demo invitations"))


# My tasks


def task_rows(tenant):
    return Task.objects.for_tenant(tenant).select_related("account", "owner", "completed_by")


@tenant_page
def my_tasks(request):
    """Open tasks in three groups: overdue, due today, upcoming (later or no date).

    One query reads them all (capped), sorted by due date; grouping is done here.
    Everyone sees their own; admins may switch to everyone's (another value is named as an error).
    """
    tenant = request.tenant
    is_admin = request.membership.role == Role.ADMIN
    query = QueryChoices(request)
    scope = query.chosen("owner", {"mine": "mine", **({"all": "all"} if is_admin else {})}, "mine")
    tasks = task_rows(tenant).filter(completed_at__isnull=True)
    if scope == "mine":
        tasks = tasks.filter(owner=request.user)
    # "Today" is the reader's, in the zone the page shows the due times in.
    today = timezone.localdate()
    start, end = local_day_start(today), local_day_start(today + dt.timedelta(days=1))
    groups = {"overdue": [], "today": [], "upcoming": []}
    listed = list(tasks.order_by("due_at", "id")[: TASKS_SHOWN + 1])
    for task in listed[:TASKS_SHOWN]:
        if task.due_at is None or task.due_at >= end:
            groups["upcoming"].append(task)
        elif task.due_at < start:
            groups["overdue"].append(task)
        else:
            groups["today"].append(task)
    context = {
        "groups": [
            {"key": "overdue", "label": "Overdue", "tasks": groups["overdue"]},
            {"key": "today", "label": "Due today", "tasks": groups["today"]},
            {"key": "upcoming", "label": "Upcoming", "tasks": groups["upcoming"]},
        ],
        "more": len(listed) > TASKS_SHOWN,
        "tasks_shown": TASKS_SHOWN,
        "scope": scope,
        "errors": query.errors,
        "is_admin": is_admin,
        "can_change": can_change(request),
        "task_members": list(User.objects.members_of(tenant)) if can_change(request) else [],
        "bulk": can_change(request) and bool(listed),
        "show_account": True,
    }
    return render(request, "playbooks/tasks.html", context)


def due_at_for(day, kept=None):
    """When a task picked for `day` is due: by the end of that working day (17:00), in the zone of whoever
    picked it. A day left as it was keeps the time it had (`kept`), which a playbook may have set."""
    if day is None:
        return None
    if kept is not None and timezone.localtime(kept).date() == day:
        return kept
    return local_day_start(day) + dt.timedelta(hours=17)


class TaskChangeForm(forms.Form):
    due = forms.DateField(required=False, label="Due on", widget=forms.DateInput(attrs={"type": "date"}))
    owner = forms.ModelChoiceField(
        queryset=None, label="Owner", required=False, error_messages={"invalid_choice": "Choose a member of this team."}
    )

    def __init__(self, *args, members, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = members


def _task_answer(request, task, done, error=None):
    """The task's row re-rendered (htmx), else a redirect back with the message."""
    tenant = request.tenant
    context = {"task": task_rows(tenant).get(pk=task.pk), "task_members": User.objects.members_of(tenant)}
    return row_action_answer(
        request, "playbooks/_task_row.html", context,
        title=task.title, done=done, error=error, fallback=f"/t/{tenant.slug}/tasks/",
    )


@tenant_page
@require_POST
def task_complete_page(request, task_id):
    task = object_to_change(request, Task.objects.for_tenant(request.tenant), task_id)
    task_complete(tenant=request.tenant, task=task, user=request.user)
    return _task_answer(request, task, "Done")


@tenant_page
@require_POST
def task_change_page(request, task_id):
    """Move an open task to another day or give it to another member."""
    tenant = request.tenant
    task = object_to_change(request, Task.objects.for_tenant(tenant).filter(completed_at__isnull=True), task_id)
    form = TaskChangeForm(request.POST, members=User.objects.members_of(tenant))
    if not form.is_valid():
        return _task_answer(request, task, None, form_errors_text(form))
    due_at = due_at_for(form.cleaned_data["due"], kept=task.due_at)
    try:
        task_change(tenant=tenant, task=task, owner=form.cleaned_data["owner"], due_at=due_at, actor=request.user)
    except ValidationError as exc:
        return _task_answer(request, task, None, " ".join(exc.messages))
    return _task_answer(request, task, "Saved")


class TasksBulkForm(forms.Form):
    task = IdListField(error_messages={"required": "Select the tasks first.", "invalid": "Select tasks from the list."})


@ticked_rows_action("tasks")
def tasks_bulk_complete(request):
    """Complete the tasks ticked on the task list; those done meanwhile are counted apart."""
    form = TasksBulkForm(request.POST)
    if not form.is_valid():
        return tell_form_errors(request, form)
    selected = set(form.cleaned_data["task"])
    completed = tasks_complete(tenant=request.tenant, task_ids=selected, user=request.user)
    tell_bulk_outcome(
        request, done="Completed", noun="task", changed=len(completed), selected=len(selected), rest="done already"
    )


class TaskForm(forms.Form):
    """A new task's title and day."""

    title = forms.CharField(max_length=300)
    due = forms.DateField(required=False, label="Due on", widget=forms.DateInput(attrs={"type": "date"}))
    # A token written into the form makes a double submit create the task once.
    token = forms.UUIDField(widget=forms.HiddenInput)


class AlertTaskForm(TaskForm):
    title = forms.CharField(max_length=300, error_messages={"required": "Name the task."})


@tenant_page
@require_POST
def alert_task_add(request, alert_id):
    """Follow an alert up with a task on its account, for the account's owner (else for whoever adds it).

    An open alert is acknowledged then, the task's title as its note: someone is on it.
    """
    tenant = request.tenant
    alert = object_to_change(request, Alert.objects.for_tenant(tenant).select_related("account"), alert_id)
    form = AlertTaskForm(request.POST)
    if not form.is_valid():
        return alert_row_answer(request, alert, None, form_errors_text(form))
    title = form.cleaned_data["title"]
    task_create_once(
        tenant=tenant,
        key=f"alert:{alert.pk}:{form.cleaned_data['token']}",
        account=alert.account,
        owner=alert.account.owner or request.user,
        title=title,
        due_at=due_at_for(form.cleaned_data["due"]),
        source=f"alert:{alert.pk}",
        given_by=request.user,
    )
    if alert.status == AlertStatus.OPEN:
        alerts_acknowledge(tenant=tenant, alert_ids=[alert.pk], user=request.user, note=f"Follow-up task: {title}")
    return alert_row_answer(request, alert, "Task added")


# Outbox


def email_rows(tenant):
    return OutboundEmail.objects.for_tenant(tenant).select_related("account", "step_run__step")


def is_demo_invitation(email):
    return email.step_run is not None and email.step_run.step.kind == StepKind.SCHEDULE_DEMO


@tenant_page
def outbox(request):
    """Emails and demo invitations, newest first; filter by owner (mine or all), status and kind.

    Counts per status under the owner and kind filters (one grouped query), then one page. A filter value
    that is none of its choices is named as an error, and the other filters still apply.
    """
    tenant = request.tenant
    query = QueryChoices(request)
    scope = query.chosen("scope", {"mine": "mine"}, "")
    status = query.chosen("status", {value: value for value in EmailStatus.values}, "")
    kind = query.chosen("kind", {value: value for value, _ in OUTBOX_KINDS}, "")
    emails = email_rows(tenant)
    if scope == "mine":
        emails = emails.filter(owner=request.user)
    if kind == "demo":
        emails = emails.filter(step_run__step__kind=StepKind.SCHEDULE_DEMO)
    elif kind == "email":
        emails = emails.exclude(step_run__step__kind=StepKind.SCHEDULE_DEMO)
    counts = dict(emails.order_by().values_list("status").annotate(n=Count("pk")))
    if status:
        emails = emails.filter(status=status)
    page = Paginator(emails.order_by("-created_at", "-id"), OUTBOX_PAGE_SIZE).get_page(request.GET.get("page"))
    for email in page:
        email.is_demo = is_demo_invitation(email)
    filters = {"scope": scope, "status": status, "kind": kind}
    context = {
        "page": page,
        "filters": filters,
        "statuses": [
            {"key": key, "label": label, "count": counts.get(key, 0)} for key, label in EmailStatus.choices
        ],
        "total": sum(counts.values()),
        "kinds": OUTBOX_KINDS,
        "errors": query.errors,
        "can_change": can_change(request),
        # Emails held for review are ticked for the bulk actions, when the page shows any.
        "bulk": can_change(request) and counts.get(EmailStatus.PENDING_REVIEW, 0) > 0,
    }
    return render(request, "playbooks/outbox.html", context)


class EmailEditForm(forms.Form):
    subject = forms.CharField(max_length=500)
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 12}), label="Text body")
    html = forms.CharField(widget=forms.Textarea(attrs={"rows": 12}), label="HTML body", required=False)


def email_page(request, email, *, form=None, status=200):
    email.is_demo = is_demo_invitation(email)
    context = {
        "email": email,
        "form": form or EmailEditForm(initial={"subject": email.subject, "text": email.text, "html": email.html}),
        "can_change": can_change(request),
        "reviewable": email.status == EmailStatus.PENDING_REVIEW,
    }
    return render(request, "playbooks/email.html", context, status=status)


@tenant_page
def outbox_email(request, email_id):
    email = get_object_or_404(email_rows(request.tenant).select_related("contact"), pk=email_id)
    return email_page(request, email)


@tenant_page
@require_POST
def outbox_decide(request, email_id):
    """Approve (with any edits), save edits, or skip an email waiting for review."""
    tenant = request.tenant
    email = object_to_change(request, email_rows(tenant).select_related("contact"), email_id)
    action = request.POST.get("action")
    changes = {}
    if action in ("approve", "edit") and "subject" in request.POST:
        form = EmailEditForm(request.POST)
        if not form.is_valid():
            return email_page(request, email, form=form, status=400)
        changes = form.cleaned_data
    services = {"approve": outbox_approve, "edit": outbox_edit, "skip": outbox_skip}
    done = {"approve": "Approved; it is queued to send", "edit": "Edits saved", "skip": "Skipped; it will not be sent"}
    error = None
    if action not in services:
        error = "Choose approve, edit or skip."
    else:
        try:
            email = services[action](tenant=tenant, email=email, actor=request.user, **changes)
        except ValidationError as exc:
            error = " ".join(exc.messages)
    if is_htmx(request):
        row = email_rows(tenant).get(pk=email.pk)
        row.is_demo = is_demo_invitation(row)
        done_now = None if error else done[action]
        context = {"email": row, "can_change": True, "bulk": True, "done": done_now, "error": error}
        return render(request, "playbooks/_email_row.html", context, status=400 if error else 200)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"{done[action]}: {email.subject}")
    return redirect(back_to(request, f"/t/{tenant.slug}/outbox/{email.pk}/"))


class OutboxBulkForm(forms.Form):
    """Approve or skip the emails ticked in the outbox."""

    action = forms.ChoiceField(
        choices=[("approve", "Approve"), ("skip", "Skip")],
        error_messages={"required": "Choose to approve or skip.", "invalid_choice": "Choose to approve or skip."},
    )
    email = IdListField(
        error_messages={"required": "Select the emails first.", "invalid": "Select emails from the list."}
    )


@ticked_rows_action("outbox")
def outbox_bulk(request):
    """Approve or skip the emails ticked in the outbox; those already decided are counted apart."""
    form = OutboxBulkForm(request.POST)
    if not form.is_valid():
        return tell_form_errors(request, form)
    approve, selected = form.cleaned_data["action"] == "approve", set(form.cleaned_data["email"])
    decided = outbox_decide_many(tenant=request.tenant, email_ids=selected, approve=approve, actor=request.user)
    tell_bulk_outcome(
        request,
        done="Approved" if approve else "Skipped",
        noun="email",
        changed=decided,
        selected=len(selected),
        rest="no longer waiting for review",
    )


# The account page's playbooks section


class TaskAddForm(TaskForm):
    owner = forms.ModelChoiceField(queryset=None, required=False, empty_label="The account's owner")

    def __init__(self, *args, members, **kwargs):
        super().__init__(*args, **kwargs)
        owner = self.fields["owner"]
        owner.queryset = members
        # The choices from one plain read: a ModelChoiceField would iterate a server-side cursor on PostgreSQL.
        owner.choices = [("", owner.empty_label), *((user.pk, user.name or user.email) for user in members)]


def account_opportunities(tenant, account, playbooks):
    """The account's latest expansion opportunities, each with the name of the one of `playbooks` that flagged it."""
    opportunities = list(
        ExpansionOpportunity.objects.for_tenant(tenant).filter(account=account)[:ACCOUNT_OPPORTUNITIES_SHOWN]
    )
    names = {playbook.key: playbook.name for playbook in playbooks}
    for opportunity in opportunities:
        opportunity.playbook_name = names.get(opportunity.source.removeprefix("playbook:"), "")
    return opportunities


def account_playbooks_context(request, account, members):
    """Runs with each step's state, expansion opportunities, open tasks, emails, and the two forms.

    A fixed number of queries, whatever the account's history. `members` is the page's queryset of
    the tenant's members, read once for every form on it that names one.
    """
    tenant = request.tenant
    # A tenant has a handful of playbooks: read once, they name the runs and the opportunities.
    playbooks = list(Playbook.objects.for_tenant(tenant).only("pk", "key", "name", "enabled"))
    playbook_by_id = {playbook.pk: playbook for playbook in playbooks}
    step_runs = StepRun.objects.for_tenant(tenant).select_related("step").order_by("sequence", "id")
    runs = list(
        Run.objects.for_tenant(tenant)
        .filter(account=account)
        .select_related("started_by")
        .prefetch_related(Prefetch("step_runs", queryset=step_runs))
        .order_by("-started_at", "-id")[:ACCOUNT_RUNS_SHOWN]
    )
    for run in runs:
        # A playbook added since the list was read is read on its own.
        run.playbook = playbook_by_id.get(run.playbook_id) or run.playbook
    return {
        "runs": runs,
        "account_opportunities": account_opportunities(tenant, account, playbooks),
        # The rows as the account page shows them: without their account, which is the page's.
        "account_tasks": list(
            Task.objects.for_tenant(tenant)
            .filter(account=account, completed_at__isnull=True)
            .select_related("owner")
            .order_by("due_at", "id")
        ),
        "account_emails": list(
            OutboundEmail.objects.for_tenant(tenant)
            .filter(account=account)
            .only("status", "to_email", "subject", "sent_at", "created_at")
            .order_by("-created_at", "-id")[:ACCOUNT_EMAILS_SHOWN]
        ),
        "playbooks": playbooks if can_change(request) else [],
        "task_form": TaskAddForm(members=members, initial={"token": uuid.uuid4()}),
        # The same read of the members as the form's: the rows' change forms name them too.
        "task_members": members,
    }


def account_redirect(tenant, account):
    return redirect("account-detail", tenant_slug=tenant.slug, account_id=account.pk)


@tenant_page
@require_POST
def account_playbook_start(request, account_id):
    tenant = request.tenant
    account = object_to_change(request, Account.objects.for_tenant(tenant), account_id)
    playbook = Playbook.objects.for_tenant(tenant).filter(pk=request.POST.get("playbook") or None).first()
    if playbook is None:
        messages.error(request, "Choose a playbook to start.")
        return account_redirect(tenant, account)
    try:
        run_start(tenant=tenant, playbook=playbook, account=account, actor=request.user)
    except ValidationError as exc:
        messages.error(request, f"{playbook.name} was not started: " + " ".join(exc.messages))
    else:
        messages.success(request, f"Started {playbook.name} for {account.name}.")
    return account_redirect(tenant, account)


class AccountsPlaybookForm(forms.Form):
    """A playbook to start by hand for the accounts ticked in the portfolio."""

    playbook = forms.ModelChoiceField(
        queryset=None,
        error_messages={
            "required": "Choose a playbook to start.",
            "invalid_choice": "Choose one of this team's playbooks.",
        },
    )
    account = TickedAccountsField()

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["playbook"].queryset = Playbook.objects.for_tenant(tenant)


@ticked_rows_action("portfolio")
def accounts_playbook_start(request):
    """Start a playbook by hand for the accounts ticked in the portfolio; those it may not enter are counted."""
    form = AccountsPlaybookForm(request.POST, tenant=request.tenant)
    if not form.is_valid():
        return tell_form_errors(request, form)
    playbook, selected = form.cleaned_data["playbook"], set(form.cleaned_data["account"])
    started = runs_start_by_hand(tenant=request.tenant, playbook=playbook, account_ids=selected, actor=request.user)
    tell_bulk_outcome(
        request,
        done=f"Started {playbook.name} for",
        noun="account",
        changed=len(started),
        selected=len(selected),
        rest="in it already or may not enter it again yet",
    )


@tenant_page
@require_POST
def account_run_cancel(request, account_id, run_id):
    """Stop a playbook's active run on the account: its steps not yet run are skipped, its held emails dropped."""
    tenant = request.tenant
    runs = Run.objects.for_tenant(tenant).filter(account_id=account_id).select_related("playbook", "account")
    run = object_to_change(request, runs, run_id)
    why = request.POST.get("reason", "").strip()
    reason = f"Cancelled by hand: {why}" if why else "Cancelled by hand."
    try:
        run_cancel(tenant=tenant, run=run, actor=request.user, reason=reason)
    except ValidationError as exc:
        messages.error(request, f"{run.playbook.name} was not stopped: " + " ".join(exc.messages))
    else:
        messages.success(request, f"Stopped {run.playbook.name} for {run.account.name}.")
    return account_redirect(tenant, run.account)


@tenant_page
@require_POST
def account_task_add(request, account_id):
    tenant = request.tenant
    account = object_to_change(request, Account.objects.for_tenant(tenant), account_id)
    form = TaskAddForm(request.POST, members=User.objects.members_of(tenant))
    if not form.is_valid():
        problems = " ".join(f"{form[name].label}: {' '.join(errors)}" for name, errors in form.errors.items())
        messages.error(request, f"The task was not added. {problems}")
        return account_redirect(tenant, account)
    task_create_once(
        tenant=tenant,
        key=f"page:{form.cleaned_data['token']}",
        account=account,
        owner=form.cleaned_data["owner"] or account.owner,
        title=form.cleaned_data["title"],
        due_at=due_at_for(form.cleaned_data["due"]),
        source="manual",
        given_by=request.user,
    )
    messages.success(request, f"Task added: {form.cleaned_data['title']}")
    return account_redirect(tenant, account)
