"""Settings pages of health: scorecards per stage with their versions, and the colour bands."""

from django.contrib import messages
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from csplatform.tenancy.settings_views import back, posted, settings_page
from lifecycle.models import Stage

from .analysis import scorecard_preview
from .models import Scorecard, ScorecardVersion
from .services import (
    InvalidMeasures,
    health_settings_get,
    health_settings_update,
    known_sources,
    measures_validate,
    scorecard_create,
    scorecard_update,
    scorecard_version_create,
    scorecard_version_publish,
)
from .settings_forms import ERROR_FIELDS, BandsForm, MeasureForm, MeasureFormSet, ScorecardForm


@settings_page
def scorecards(request):
    tenant = request.tenant
    settings = health_settings_get(tenant)
    form = BandsForm(posted(request), initial={"red_below": settings.red_below, "green_from": settings.green_from})
    if request.method == "POST" and form.is_valid():
        health_settings_update(tenant=tenant, actor=request.user, **form.cleaned_data)
        messages.success(request, "Saved the colour bands. Accounts are rescored on the next run.")
        return back(request, "settings-scorecards")
    cards = Scorecard.objects.for_tenant(tenant).select_related("published_version", "stage")
    by_stage = {card.stage_id: card for card in cards}
    rows = [(None, by_stage.get(None))] + [
        (stage, by_stage.get(stage.pk)) for stage in Stage.objects.for_tenant(tenant).order_by("position", "pk")
    ]
    return render(request, "settings/scorecards.html", {"form": form, "rows": rows})


def _stage_of(request):
    """The stage named by `?stage=<id>` for a new scorecard; none for the default scorecard."""
    stage_id = request.GET.get("stage")
    if not stage_id:
        return None
    if not stage_id.isdigit():
        raise Http404("No such stage.")
    return get_object_or_404(Stage.objects.for_tenant(request.tenant), pk=stage_id)


def _show_measure_errors(form, formset, positions, errors):
    """Put each service error (keyed by path, see health.measures) on the measure form and field it names."""
    for path, message in errors.items():
        if len(path) < 2:
            form.add_error(None, message)
            continue
        form = formset.forms[positions[path[1]]]
        part = next((ERROR_FIELDS[key] for key in reversed(path[2:]) if key in ERROR_FIELDS), None)
        form.add_error(part, message)


def _measures(formset):
    """The measures of the filled-in, not deleted forms, and the form index of each."""
    positions, measures = [], []
    for index, form in enumerate(formset.forms):
        if form.has_changed() and not (formset.can_delete and formset._should_delete_form(form)):
            positions.append(index)
            measures.append(form.measure())
    return measures, positions


@settings_page
def scorecard_edit(request, pk=None):
    """Edit a scorecard's measures: preview, save a draft version, or save and publish.

    1. A scorecard is edited from its latest version (a draft if one is newer than the published one).
    2. Every action first validates the measures with the service, so the page shows each error on its field.
    3. Preview scores the scorecard's accounts with the draft, beside how they score now; nothing is saved.
    """
    tenant = request.tenant
    scorecard = get_object_or_404(Scorecard.objects.for_tenant(tenant).select_related("stage"), pk=pk) if pk else None
    if scorecard is None:
        stage = _stage_of(request)
        existing = Scorecard.objects.for_tenant(tenant).filter(stage=stage).first()
        if existing is not None:
            return redirect("settings-scorecard", tenant.slug, existing.pk)
        scorecard = Scorecard(tenant=tenant, stage=stage)
    versions = list(ScorecardVersion.objects.for_tenant(tenant).filter(scorecard=scorecard)) if scorecard.pk else []
    latest = versions[0] if versions else None
    default_name = f"{scorecard.stage.name} scorecard" if scorecard.stage_id else "Default scorecard"
    form = ScorecardForm(
        posted(request),
        initial={"name": scorecard.name or default_name, "description": scorecard.description},
    )
    formset = MeasureFormSet(
        posted(request),
        initial=[MeasureForm.initial_for(measure) for measure in latest.measures] if latest else None,
        prefix="measures",
    )
    preview = None
    action = request.POST.get("action")
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        measures, positions = _measures(formset)
        try:
            measures = measures_validate(tenant=tenant, measures=measures)
        except InvalidMeasures as exc:
            _show_measure_errors(form, formset, positions, exc.errors)
        else:
            if action == "preview":
                preview = scorecard_preview(tenant=tenant, scorecard=scorecard, measures=measures)
            else:
                scorecard = _save(request, scorecard, form.cleaned_data, measures, publish=action == "publish")
                return redirect("settings-scorecard", tenant.slug, scorecard.pk)
    context = {
        "scorecard": scorecard,
        "form": form,
        "formset": formset,
        "versions": versions,
        "latest": latest,
        "preview": preview,
        "sources": sorted(known_sources(tenant).items()),
    }
    return render(request, "settings/scorecard_form.html", context)


@transaction.atomic
def _save(request, scorecard, data, measures, *, publish):
    tenant, actor = request.tenant, request.user
    if scorecard.pk is None:
        scorecard = scorecard_create(
            tenant=tenant, actor=actor, name=data["name"], description=data["description"], measures=measures,
            stage=scorecard.stage, publish=publish,
        )
        messages.success(request, f"Created {scorecard.name}" + (" and published it." if publish else " as a draft."))
        return scorecard
    if (scorecard.name, scorecard.description) != (data["name"], data["description"]):
        scorecard_update(tenant=tenant, scorecard=scorecard, actor=actor, name=data["name"], description=data["description"])
    version = scorecard_version_create(tenant=tenant, scorecard=scorecard, actor=actor, measures=measures, note=data["note"])
    if publish:
        scorecard_version_publish(tenant=tenant, version=version, actor=actor)
        messages.success(request, f"Published version {version.number}. Accounts are rescored on the next run.")
    else:
        messages.success(request, f"Saved version {version.number} as a draft; publish it to score with it.")
    return scorecard


@require_POST
@settings_page
def scorecard_version_publish_view(request, pk, version_pk):
    version = get_object_or_404(ScorecardVersion.objects.for_tenant(request.tenant), pk=version_pk, scorecard_id=pk)
    scorecard_version_publish(tenant=request.tenant, version=version, actor=request.user)
    messages.success(request, f"Published version {version.number}. Accounts are rescored on the next run.")
    return redirect("settings-scorecard", request.tenant.slug, pk)
