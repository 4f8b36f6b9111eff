from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from .models import Role
from .rls import dangerously_bypass_rls, tenant_context
from .timezones import member_zone

EDITOR_ROLES = {Role.ADMIN, Role.CSM}


def user_memberships(user):
    """The user's memberships with their tenants, in tenant name order (one query).

    They name the tenants a page may set, so they are read across tenants.
    """
    with dangerously_bypass_rls():
        return list(user.memberships.select_related("tenant").order_by("tenant__name", "tenant__slug"))


def tenant_page(view):
    """Resolve the tenant of a `/t/<tenant_slug>/…` page and the user's role in it.

    The one place where pages learn their tenant. The view receives the
    request with `tenant`, `membership` (the role) and `memberships` (for the
    tenant switcher) set, and no `tenant_slug` argument. A tenant the user
    does not belong to answers 404, the same as one that does not exist, so a
    page never reveals which tenants exist. Times render in the member's zone
    (their own, else the tenant's), and dates typed on the page are read in it.
    """

    @login_required
    @wraps(view)
    def wrapper(request, tenant_slug, *args, **kwargs):
        memberships = user_memberships(request.user)
        membership = next((m for m in memberships if m.tenant.slug == tenant_slug), None)
        if membership is None:
            raise Http404("No such tenant.")
        request.memberships = memberships
        request.membership = membership
        request.tenant = membership.tenant
        with timezone.override(member_zone(membership.tenant, membership)), tenant_context(membership.tenant):
            return view(request, *args, **kwargs)

    return wrapper


def can_change(request):
    """Admins and CSMs act on accounts; viewers only look."""
    return request.membership.role in EDITOR_ROLES


def refuse_viewers(request):
    """Answer 403 (the 403 page, naming the reason) unless the member may change accounts."""
    if not can_change(request):
        raise PermissionDenied("Your role in this tenant can look but not change anything.")


def object_to_change(request, queryset, pk):
    """The object `pk` of the tenant-scoped `queryset`, for a member who may change it.

    The lookup comes first, so another tenant's id answers 404 whatever the
    member's role, and a viewer learns nothing from a 403 about ids it cannot see.
    """
    instance = get_object_or_404(queryset, pk=pk)
    refuse_viewers(request)
    return instance


def back_to(request, fallback):
    """The page the form came from, if it is one of ours, else `fallback`."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback


def is_htmx(request):
    return request.headers.get("HX-Request") == "true"


def row_action_answer(request, template, context, *, title, done, error, fallback):
    """The answer to an action on a list's row: the row re-rendered with what it did (htmx), else a redirect
    back with a message. `context` names the row's object; a row on an account's page ("context" posted as
    "account") leaves out its account and its tick box."""
    if is_htmx(request):
        row_context = request.POST.get("context", "")
        in_account = row_context == "account"
        context |= {
            "can_change": True,
            "bulk": not in_account,
            "show_account": not in_account,
            "row_context": row_context,
            "done": None if error else done,
            "error": error,
        }
        return render(request, template, context, status=400 if error else 200)
    if error:
        messages.error(request, f"{title}: {error}")
    else:
        messages.success(request, f"{done}: {title}")
    return redirect(back_to(request, fallback))


def tell_bulk_outcome(request, *, done, noun, changed, selected, rest):
    """Say what an action on ticked rows did: "Resolved 3 alerts." when it changed every one, else how many
    of those selected, and what the rest were (`rest`, "already resolved"); an error when it changed none."""
    if changed == selected:
        messages.success(request, f"{done} {changed} {noun}{pluralize(changed)}.")
        return
    report = messages.success if changed else messages.error
    report(request, f"{done} {changed} of the {selected} {noun}s selected; the rest were {rest}.")


def ticked_rows_action(list_name):
    """Make `view(request)` the POST action on rows ticked in a list page: for editors only, and answered
    with a redirect back to the page the form came from (else the list page named `list_name`). The view
    returns nothing; it tells what it did in messages (tell_bulk_outcome, tell_form_errors)."""

    def decorate(view):
        @tenant_page
        @require_POST
        @wraps(view)
        def wrapper(request):
            refuse_viewers(request)
            view(request)
            return redirect(back_to(request, reverse(list_name, kwargs={"tenant_slug": request.tenant.slug})))

        return wrapper

    return decorate


def form_errors_text(form):
    """Every error of an invalid form, in one line for a message or a row."""
    return " ".join(error for errors in form.errors.values() for error in errors)


def tell_form_errors(request, form):
    messages.error(request, form_errors_text(form))


class QueryChoices:
    """The filters a list page reads from its query string, each one of its choices.

    A value that is none of them is named in `errors` (shown beside its
    filter, in the words a form uses) and the filter falls back to its
    default, so the page still answers with the other filters applied.
    """

    def __init__(self, request):
        self.query = request.GET
        self.errors = {}

    def chosen(self, name, choices, default=None):
        """What the query's value for `name` means among `choices` ({value: meaning}), else `default`."""
        value = self.query.get(name, "")
        if value and value not in choices:
            self.errors[name] = f"Select a valid choice. {value} is not one of the available choices."
        return choices.get(value, default)
