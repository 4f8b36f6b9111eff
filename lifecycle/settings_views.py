"""Settings pages of the lifecycle: the stages, their order and entry criteria, and the templates."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from csplatform.rules.settings_views import criteria_feedback, criteria_fields
from csplatform.tenancy.settings_forms import add_service_errors
from csplatform.tenancy.settings_views import back, posted, settings_page

from .models import AccountStage, Stage
from .services import stage_create, stage_delete, stage_update, stages_apply_template, stages_reorder
from .settings_forms import StageDeleteForm, StageForm, TemplateApplyForm
from .templates import TEMPLATES, TEMPLATES_BY_KEY


def accounts_per_stage(tenant):
    return dict(
        AccountStage.objects.for_tenant(tenant).values("stage").annotate(n=Count("pk")).values_list("stage", "n")
    )


@settings_page
def stages(request):
    counts = accounts_per_stage(request.tenant)
    rows = [(stage, counts.get(stage.pk, 0)) for stage in Stage.objects.for_tenant(request.tenant).order_by("position", "pk")]
    return render(request, "settings/stages.html", {"rows": rows, "templates": TEMPLATES})


def moved(keys, key, direction):
    """The order `keys` with `key` swapped with its neighbour above ("up") or below ("down")."""
    index = keys.index(key)
    other = index - 1 if direction == "up" else index + 1
    if 0 <= other < len(keys):
        keys[index], keys[other] = keys[other], keys[index]
    return keys


@require_POST
@settings_page
def stages_reorder_view(request):
    """Reorder from an up/down button (`move` = "<key>:up|down") or after a drag (`order`: every key, in order)."""
    keys = request.POST.getlist("order")
    if "move" in request.POST:
        key, _, direction = request.POST["move"].partition(":")
        current = list(Stage.objects.for_tenant(request.tenant).order_by("position", "pk").values_list("key", flat=True))
        if key not in current or direction not in ("up", "down"):
            messages.error(request, "Choose a stage and a direction to move it.")
            return back(request, "settings-stages")
        keys = moved(current, key, direction)
    try:
        stages_reorder(tenant=request.tenant, keys=keys, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Saved the new stage order.")
    return back(request, "settings-stages")


@settings_page
def stage_edit(request, pk=None):
    """Create or edit a stage. "Check" shows what the criteria match without saving (the no-script path)."""
    stage = get_object_or_404(Stage.objects.for_tenant(request.tenant), pk=pk) if pk else None
    initial = StageForm.initial_for(stage) if stage else None
    form = StageForm(posted(request), initial=initial, tenant=request.tenant, stage=stage)
    checking = request.POST.get("action") == "check"
    if request.method == "POST" and form.is_valid() and not checking:
        fields = dict(form.cleaned_data)
        try:
            if stage is None:
                stage = stage_create(tenant=request.tenant, actor=request.user, **fields)
                messages.success(request, f"Added the stage {stage.name}.")
            else:
                fields.pop("key")
                stage_update(tenant=request.tenant, stage=stage, actor=request.user, **fields)
                messages.success(request, f"Saved the stage {stage.name}.")
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return back(request, "settings-stages")
    text = form.data.get("entry_criteria_text") if form.is_bound else (stage.entry_criteria_text if stage else "")
    context = {
        "form": form,
        "stage": stage,
        "feedback": criteria_feedback(tenant=request.tenant, text=text),
        "fields": criteria_fields(request.tenant),
    }
    return render(request, "settings/stage_form.html", context)


@settings_page
def stage_remove(request, pk):
    stage = get_object_or_404(Stage.objects.for_tenant(request.tenant), pk=pk)
    holding = AccountStage.objects.for_tenant(request.tenant).filter(stage=stage).count()
    form = StageDeleteForm(posted(request), tenant=request.tenant, stage=stage)
    if request.method == "POST" and form.is_valid():
        try:
            stage_delete(tenant=request.tenant, stage=stage, actor=request.user, move_to=form.cleaned_data["move_to"])
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Deleted the stage {stage.name}.")
            return back(request, "settings-stages")
    return render(request, "settings/stage_delete.html", {"stage": stage, "holding": holding, "form": form})


@settings_page
def template_apply(request, key):
    template = TEMPLATES_BY_KEY.get(key)
    if template is None:
        raise Http404("No such template.")
    template_keys = {spec.key for spec in template.stages}
    counts = accounts_per_stage(request.tenant)
    current = list(Stage.objects.for_tenant(request.tenant).order_by("position", "pk"))
    occupied = [(stage, counts[stage.pk]) for stage in current if stage.key not in template_keys and counts.get(stage.pk)]
    form = TemplateApplyForm(posted(request), template=template, occupied=occupied)
    if request.method == "POST" and form.is_valid():
        try:
            stages_apply_template(tenant=request.tenant, template_key=key, actor=request.user, mapping=form.mapping())
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Your stages now follow the template “{template.name}”.")
            return back(request, "settings-stages")
    context = {
        "template": template,
        "form": form,
        "kept": [stage for stage in current if stage.key in template_keys],
        "removed": [stage for stage in current if stage.key not in template_keys],
    }
    return render(request, "settings/template_apply.html", context)
