"""Settings pages of the rules app: tenant metrics, and the live check of a criteria as it is typed."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from csplatform.customers.models import Account
from csplatform.tenancy.settings_forms import add_service_errors
from csplatform.tenancy.settings_views import back, posted, settings_page

from .criteria import compile_criteria
from .errors import CriteriaError
from .models import MetricDefinition
from .registry import fields_for
from .services import metric_definition_create, metric_definition_delete, metric_definition_update
from .settings_forms import CriteriaCheckForm, MetricForm

PREVIEW_ACCOUNTS = 10


def criteria_feedback(*, tenant, text, customers_only=False):
    """What the criteria editor shows under the text: the error with where it is, or the matching accounts.

    The count is one query over every account; the first accounts are
    explained clause by clause in Python. With `customers_only` the accounts
    in a terminal stage are left out and counted apart, as an alert rule
    that does not watch them leaves them alone.
    """
    text = (text or "").strip()
    if not text:
        return {"empty": True}
    try:
        criteria = compile_criteria(text, subject="account", tenant=tenant)
    except CriteriaError as error:
        feedback = {"error": error}
        if error.line is not None:
            # The offending line with a caret under the column, for a monospace block.
            feedback["error_line"] = text.splitlines()[error.line - 1] if text.splitlines() else ""
            feedback["caret"] = " " * (error.column - 1) + "^"
        return feedback
    accounts = Account.objects.for_tenant(tenant)
    if customers_only:
        accounts = accounts.still_customers()
    matching = criteria.filter(accounts).order_by("name", "pk")
    shown = list(criteria.with_related(matching)[:PREVIEW_ACCOUNTS])
    feedback = {
        "criteria": criteria,
        "count": matching.count(),
        "total": accounts.count(),
        "matches": [(account, criteria.explain(account)) for account in shown],
    }
    if customers_only:
        feedback["departed"] = Account.objects.for_tenant(tenant).departed().count()
    return feedback


def criteria_fields(tenant):
    """The fields an account criteria may read, for the editor's reference list."""
    return fields_for("account", tenant)


@require_POST
@settings_page
def criteria_check(request):
    """The editor's live check (htmx, as the admin types): a fragment with the error or the matching accounts."""
    form = CriteriaCheckForm(request.POST)
    text = form.cleaned_data["entry_criteria_text"] if form.is_valid() else ""
    context = criteria_feedback(tenant=request.tenant, text=text)
    return render(request, "settings/_criteria_feedback.html", {"feedback": context})


@settings_page
def metrics(request):
    definitions = MetricDefinition.objects.for_tenant(request.tenant)
    return render(request, "settings/metrics.html", {"definitions": definitions})


@settings_page
def metric_edit(request, pk=None):
    definition = get_object_or_404(MetricDefinition.objects.for_tenant(request.tenant), pk=pk) if pk else None
    initial = MetricForm.initial_for(definition) if definition else None
    form = MetricForm(posted(request), initial=initial, editing=definition is not None)
    if request.method == "POST" and form.is_valid():
        fields = dict(form.cleaned_data)
        try:
            if definition is None:
                definition = metric_definition_create(tenant=request.tenant, fields=fields, actor=request.user)
                messages.success(request, f"Created metric.{definition.key}. Every account is recomputed with it.")
            else:
                fields.pop("key")
                metric_definition_update(tenant=request.tenant, definition=definition, fields=fields, actor=request.user)
                messages.success(request, f"Saved metric.{definition.key}.")
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return back(request, "settings-metrics")
    return render(request, "settings/metric_form.html", {"form": form, "definition": definition})


@settings_page
def metric_delete(request, pk):
    definition = get_object_or_404(MetricDefinition.objects.for_tenant(request.tenant), pk=pk)
    if request.method == "POST":
        metric_definition_delete(tenant=request.tenant, definition=definition, actor=request.user)
        messages.success(request, f"Deleted metric.{definition.key}.")
        return back(request, "settings-metrics")
    return render(request, "settings/metric_delete.html", {"definition": definition})
