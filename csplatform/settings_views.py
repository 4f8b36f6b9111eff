"""The pipeline's settings page: how fresh the tenant's computed results are."""

from django.shortcuts import render

from .pipeline import pipeline_freshness
from .tenancy.settings_views import settings_page


@settings_page
def pipeline_status(request):
    return render(request, "settings/pipeline.html", {"freshness": pipeline_freshness(tenant=request.tenant)})
