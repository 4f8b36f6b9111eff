"""The settings pages that read several apps: how fresh the tenant's computed results are, a member's digest."""

from django.shortcuts import render
from django.utils import timezone

from playbooks.scheduling import working_hours

from .digests import DIGEST_ROLES, digest_build
from .pipeline import pipeline_freshness
from .tenancy.decorators import tenant_page
from .tenancy.settings_views import forbidden, own_or_administered, settings_page


@settings_page
def pipeline_status(request):
    return render(request, "settings/pipeline.html", {"freshness": pipeline_freshness(tenant=request.tenant)})


@tenant_page
def member_digest(request, pk):
    """What a member's daily digest would say today: each member sees their own, an admin anyone's."""
    membership = own_or_administered(request, pk)
    if membership is None:
        return forbidden(request)
    zone, _, workdays = working_hours(request.tenant, membership)
    day = timezone.now().astimezone(zone).date()
    context = {
        "membership": membership,
        "zone": zone,
        "own": membership.pk == request.membership.pk,
        "day": day,
        "working_day": day.weekday() in workdays,
        "receives": membership.role in DIGEST_ROLES,
        "digest": digest_build(tenant=request.tenant, membership=membership, day=day),
    }
    return render(request, "settings/member_digest.html", context)
