"""Settings page of the customers app: importing accounts and contacts from a CSV file."""

import csv

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import render

from csplatform.tenancy.settings_views import back, posted, settings_page

from .forms import CsvImportForm
from .imports import KINDS, CsvImportError, column_guide, csv_import, header_row

# The problems of a refused file listed on the page; the rest are counted.
PROBLEMS_SHOWN = 200


@settings_page
def data_import(request):
    """Upload a CSV file of accounts or contacts: every row is imported, or none and every problem is listed."""
    form = CsvImportForm(posted(request), request.FILES or None)
    refusal, status = None, 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            kind = form.cleaned_data["kind"]
            try:
                result = csv_import(
                    tenant=request.tenant, kind=kind, content=form.cleaned_data["file"].read(), actor=request.user
                )
            except CsvImportError as exc:
                refusal = {"message": exc.message, "problems": exc.problems[:PROBLEMS_SHOWN],
                           "more": max(0, len(exc.problems) - PROBLEMS_SHOWN)}
            else:
                messages.success(
                    request,
                    f"Imported {result.rows} {kind}: {result.created} created, {result.updated} updated. "
                    "Their health and stages follow in the next pass.",
                )
                return back(request, "settings-import")
    context = {
        "form": form,
        "refusal": refusal,
        "guides": [(kind, column_guide(kind)) for kind in KINDS],
    }
    return render(request, "settings/import.html", context, status=status)


@settings_page
def import_template(request, kind):
    """An empty CSV file of `kind` with every column named: a start for a spreadsheet."""
    if kind not in KINDS:
        raise Http404("No such kind of import.")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{kind}-import.csv"'
    csv.writer(response).writerow(header_row(kind))
    return response
