"""Settings pages of playbooks: the list, the editor with its steps, email preview and simulation, the library."""

import re

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from alerts.models import Subject
from alerts.settings_views import criteria_editor
from csplatform.customers.models import Account
from csplatform.tenancy.settings_views import back, posted, settings_page

from .library import LIBRARY_BY_KEY
from .models import Playbook, RunStatus, StepKind
from .rendering import TemplateError, render as render_template, render_context
from .services import playbook_create, playbook_set_enabled, playbook_steps, playbook_templates_install, playbook_update
from .settings_forms import (
    STEP_FIELDS,
    UNITS,
    PlaybookForm,
    PreviewForm,
    step_definitions,
    steps_edited,
    steps_from_post,
    steps_from_saved,
)
from .simulation import simulate
from .steps import contacts_with_email, primary_contact

STEP_ERROR = re.compile(r"^steps\[(\d+)\](?:\.(delay_minutes|kind|config))?(?:\.(.+))?$")
PREVIEW_ACCOUNTS = 200


@settings_page
def playbooks(request):
    rows = Playbook.objects.for_tenant(request.tenant).annotate(
        run_count=Count("runs", distinct=True),
        active_runs=Count("runs", filter=Q(runs__status=RunStatus.ACTIVE), distinct=True),
        step_count=Count("steps", filter=Q(steps__active=True), distinct=True),
    )
    library = [(key, factory()) for key, factory in LIBRARY_BY_KEY.items()]
    installed = set(
        Playbook.objects.for_tenant(request.tenant).filter(key__in=LIBRARY_BY_KEY).values_list("key", flat=True)
    )
    return render(
        request, "settings/playbooks/list.html", {"playbooks": rows, "library": library, "installed": installed}
    )


class StepErrors:
    """A service ValidationError split into the playbook form's fields, each step's fields, and the rest."""

    def __init__(self, error, form):
        self.steps = {}
        self.general = []
        for path, problems in error.message_dict.items():
            match = STEP_ERROR.match(path)
            if match:
                index, part, config_path = match.groups()
                key = config_path if part == "config" and config_path else (part if part == "delay_minutes" else "")
                self.steps.setdefault(int(index), {}).setdefault(key, []).extend(problems)
            elif path.startswith("trigger_config."):
                name = "trigger_" + path.removeprefix("trigger_config.")
                form.add_error(name if name in form.fields else None, problems)
            elif path in form.fields:
                form.add_error(path, problems)
            else:
                self.general.extend(problems)


def step_rows(rows, errors):
    """What the template shows per step: its fields with their values and errors."""
    shown = []
    for index, row in enumerate(rows):
        problems = errors.get(index, {})
        fields = [
            {
                "spec": spec,
                "name": f"step-{index}-{spec.path}",
                "value": row["values"].get(spec.path, ""),
                "errors": problems.get(spec.path, []),
            }
            for spec in STEP_FIELDS.get(row["kind"], ())
        ]
        known = {spec.path for spec in STEP_FIELDS.get(row["kind"], ())} | {"delay_minutes"}
        shown.append(
            {
                **row,
                "index": index,
                "fields": fields,
                "delay_errors": problems.get("delay_minutes", []),
                # Problems with the step as a whole, or with a config field the editor does not show.
                "errors": [message for key, found in problems.items() if key not in known for message in found],
                "previewable": any(spec.path == "subject" for spec in STEP_FIELDS.get(row["kind"], ())),
            }
        )
    return shown


def email_preview(tenant, account, row):
    """Render one email step's subject and bodies for a real account with the sandboxed renderer."""
    from health.models import HealthScore
    from lifecycle.models import AccountStage

    contacts = contacts_with_email(tenant).filter(account=account, unsubscribed=False).order_by("pk")
    contact = primary_contact(list(contacts))
    state = AccountStage.objects.for_tenant(tenant).select_related("stage").filter(account=account).first()
    context = render_context(
        account=account,
        contact=contact,
        owner=account.owner,
        stage=state.stage if state else None,
        health=HealthScore.objects.for_tenant(tenant).filter(account=account).first(),
    )
    preview = {"account": account, "contact": contact, "position": row["index"]}
    try:
        preview["subject"] = " ".join(render_template(row["values"].get("subject", ""), context).split())
        preview["text"] = render_template(row["values"].get("text", ""), context)
        preview["html"] = render_template(row["values"].get("html", ""), context, html=True)
    except TemplateError as exc:
        preview["error"] = str(exc)
    return preview


@settings_page
def playbook_edit(request, pk=None):
    """Create or edit a playbook.

    1. A GET shows the saved playbook (or an empty one).
    2. A POST with action "save" validates everything through the service and
       shows every problem on its field or step, keeping what was typed.
    3. Any other action (a step button, Check, Preview) shows the page again
       from what was posted, without saving or judging it.
    """
    playbook = get_object_or_404(Playbook.objects.for_tenant(request.tenant), pk=pk) if pk else None
    saved = PlaybookForm.initial_for(playbook) if playbook else {}
    editing = playbook is not None
    action = request.POST.get("action", "save")
    accounts = Account.objects.for_tenant(request.tenant).select_related("owner")
    preview_form = PreviewForm(posted(request), accounts=accounts, shown=PREVIEW_ACCOUNTS)
    errors, general, preview = {}, [], None
    if request.method != "POST":
        rows = steps_from_saved(playbook_steps(request.tenant, playbook)) if playbook else []
        form = PlaybookForm(initial=saved, tenant=request.tenant, editing=editing)
    elif action == "save":
        rows = steps_from_post(request.POST)
        form = PlaybookForm(request.POST, initial=saved, tenant=request.tenant, editing=editing)
    else:
        posted_rows = steps_from_post(request.POST)
        edited = steps_edited(posted_rows, action, request.POST.get("new_step_kind", ""))
        rows = posted_rows if edited is None else edited
        form = PlaybookForm(initial=saved | request.POST.dict(), tenant=request.tenant, editing=editing)
    if form.is_bound and form.is_valid():
        try:
            playbook = playbook_save(request, playbook, form.definition(), step_definitions(rows))
        except ValidationError as exc:
            step_errors = StepErrors(exc, form)
            errors, general = step_errors.steps, step_errors.general
        else:
            return back(request, "settings-playbook", playbook.pk)
    shown = step_rows(rows, errors)
    index = action.removeprefix("preview:")
    if action.startswith("preview:") and index.isdigit() and int(index) < len(shown) and preview_form.is_valid():
        preview = email_preview(request.tenant, preview_form.cleaned_data["account"], shown[int(index)])
    context = {
        "form": form,
        "playbook": playbook,
        "steps": shown,
        "step_kinds": StepKind.choices,
        "units": list(UNITS),
        "steps_errors": general,
        "preview_form": preview_form,
        "preview": preview,
        "audience": criteria_editor(
            tenant=request.tenant,
            field=form["audience_text"],
            subject=Subject.CONTACT,
            text=form["audience_text"].value(),
            empty_message="No audience: customer-facing steps go to the account's primary contact.",
        ),
        "exit": criteria_editor(
            tenant=request.tenant,
            field=form["exit_criteria_text"],
            subject=Subject.ACCOUNT,
            text=form["exit_criteria_text"].value(),
            empty_message="No exit criteria: runs go through every step.",
        ),
    }
    return render(request, "settings/playbooks/form.html", context)


def playbook_save(request, playbook, definition, steps):
    """Create or update through the services (audited); a ValidationError names the fields and steps."""
    if playbook is None:
        playbook = playbook_create(tenant=request.tenant, actor=request.user, steps=steps, **definition)
        messages.success(request, f"Added the playbook {playbook.name}. It starts disabled: simulate it, then enable it.")
    else:
        playbook_update(tenant=request.tenant, playbook=playbook, actor=request.user, steps=steps, **definition)
        messages.success(request, f"Saved the playbook {playbook.name}.")
    return playbook


def _playbook(request, pk):
    return get_object_or_404(Playbook.objects.for_tenant(request.tenant), pk=pk)


@require_POST
@settings_page
def playbook_toggle(request, pk):
    playbook = _playbook(request, pk)
    enabled = request.POST.get("enabled") == "1"
    playbook_set_enabled(tenant=request.tenant, playbook=playbook, actor=request.user, enabled=enabled)
    messages.success(request, f"{'Enabled' if enabled else 'Disabled'} the playbook {playbook.name}.")
    return back(request, "settings-playbooks")


@settings_page
def playbook_simulate(request, pk):
    """What the saved playbook would have done over the last 90 days; nothing is sent."""
    playbook = _playbook(request, pk)
    try:
        report = simulate(tenant=request.tenant, playbook=playbook, days=90)
    except ValidationError as exc:
        messages.error(request, f"{playbook.name} cannot be simulated: {' '.join(exc.messages)}")
        return back(request, "settings-playbook", playbook.pk)
    return render(request, "settings/playbooks/simulate.html", {"playbook": playbook, "report": report})


@settings_page
def library_install(request, key):
    factory = LIBRARY_BY_KEY.get(key)
    if factory is None:
        raise Http404("No such playbook template.")
    spec = factory()
    error = None
    if request.method == "POST":
        try:
            installed = playbook_templates_install(tenant=request.tenant, keys=[key], actor=request.user, enabled=False)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            if not installed:
                messages.info(request, f"The playbook {spec['name']} is already installed.")
                return back(request, "settings-playbooks")
            messages.success(request, f"Installed {spec['name']}, disabled: review and simulate it, then enable it.")
            return back(request, "settings-playbook", installed[0].pk)
    steps = [(StepKind(step["kind"]).label, step["delay_minutes"]) for step in spec["steps"]]
    context = {"key": key, "spec": spec, "steps": steps, "error": error}
    return render(request, "settings/playbooks/install.html", context)
