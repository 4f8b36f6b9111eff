"""Settings pages of the tenancy app: the admin gate, members, API keys and the audit log."""

import json
import logging
import smtplib
from functools import wraps

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from .decorators import tenant_page
from .members import invitation_send, member_hours_change, member_invite, member_remove, member_role_change
from .models import ApiKey, AuditLogEntry, Membership, Role, Tenant
from .services import InvalidScopes, api_key_create, api_key_revoke
from .settings_forms import ApiKeyForm, AuditFilterForm, InviteForm, RoleForm, WorkingHoursForm, add_service_errors
from .views import PasswordSetView

logger = logging.getLogger(__name__)

AUDIT_PAGE_SIZE = 50
# The raw key of a key just created waits here until the result page shows it, once.
NEW_KEY_SESSION = "settings_new_api_key"


def settings_page(view):
    """A settings page: a member of the tenant (else 404, from tenant_page) with the admin role (else 403)."""

    @tenant_page
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.membership.role != Role.ADMIN:
            return forbidden(request)
        return view(request, *args, **kwargs)

    return wrapper


def forbidden(request):
    """The 403 page of settings, naming the admins to ask."""
    admins = Membership.objects.for_tenant(request.tenant).filter(role=Role.ADMIN).select_related("user")
    return render(request, "settings/forbidden.html", {"admins": admins}, status=403)


def posted(request):
    """The submitted data of a POST (even an empty one), None for a GET: the form is bound only when sent."""
    return request.POST if request.method == "POST" else None


def back(request, name, *args):
    return redirect(name, request.tenant.slug, *args)


@settings_page
def index(request):
    return back(request, "settings-stages")


@settings_page
def members(request):
    form = InviteForm(posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            membership, created_user = member_invite(tenant=request.tenant, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            invite_and_tell(
                request, membership, created_user, f"Invited {membership.user.email} as {membership.get_role_display()}"
            )
            return back(request, "settings-members")
    memberships = (
        Membership.objects.for_tenant(request.tenant).select_related("user").order_by("user__name", "user__email")
    )
    return render(
        request, "settings/members.html", {"form": form, "memberships": memberships, "roles": Role.choices}
    )


def invite_and_tell(request, membership, created_user, done):
    """Email the member their invitation and tell the admin `done`, or that the email could not be sent."""
    try:
        invitation_send(
            membership=membership, created_user=created_user, inviter=request.user,
            base_url=request.build_absolute_uri("/").rstrip("/"),
        )
    except (smtplib.SMTPException, OSError) as exc:
        logger.warning("Invitation to %s not sent: %s", membership.user.email, exc)
        messages.warning(
            request,
            f"{done}, but the invitation email could not be sent. Once email works, send it again, or they can "
            "get in with \"Forgot your password?\" on the sign-in page.",
        )
    else:
        messages.success(request, f"{done}.")


def _membership(request, pk):
    return get_object_or_404(Membership.objects.for_tenant(request.tenant).select_related("user"), pk=pk)


@require_POST
@settings_page
def member_role(request, pk):
    membership = _membership(request, pk)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles: admin, CSM or viewer.")
        return back(request, "settings-members")
    try:
        membership = member_role_change(
            tenant=request.tenant, membership=membership, role=form.cleaned_data["role"], actor=request.user
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{membership.user.email} is now {membership.get_role_display()}.")
    return back(request, "settings-members")


def own_or_administered(request, pk):
    """The member `pk` of the request's tenant (else 404), if the request is theirs or an admin's; else None."""
    membership = _membership(request, pk)
    if request.membership.role == Role.ADMIN or membership.pk == request.membership.pk:
        return membership
    return None


@tenant_page
def member_hours(request, pk):
    """A member's working hours: each member edits their own, an admin anyone's."""
    membership = own_or_administered(request, pk)
    if membership is None:
        return forbidden(request)
    is_admin = request.membership.role == Role.ADMIN
    form = WorkingHoursForm(posted(request), instance=membership, tenant=request.tenant)
    if request.method == "POST" and form.is_valid():
        try:
            member_hours_change(tenant=request.tenant, membership=membership, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Working hours of {membership.user.email} saved.")
            if is_admin:
                return back(request, "settings-members")
            return back(request, "settings-member-hours", membership.pk)
    return render(request, "settings/member_hours.html", {"form": form, "membership": membership})


@require_POST
@settings_page
def member_reinvite(request, pk):
    """Send a member who has not set a password yet a new invitation, its link valid from now."""
    membership = _membership(request, pk)
    if membership.user.has_usable_password():
        messages.error(request, f"{membership.user.email} has set a password already; they sign in as usual.")
    else:
        invite_and_tell(request, membership, True, f"Sent {membership.user.email} a new invitation")
    return back(request, "settings-members")


@require_POST
@settings_page
def member_delete(request, pk):
    membership = _membership(request, pk)
    try:
        member_remove(tenant=request.tenant, membership=membership, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return back(request, "settings-members")
    messages.success(request, f"Removed {membership.user.email} from {request.tenant.name}.")
    # An admin who removed themselves can no longer see this tenant's settings.
    if membership.user == request.user:
        return redirect("home")
    return back(request, "settings-members")


class JoinView(PasswordSetView):
    """Where an invited user sets a password, from the link in the invitation email."""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["tenant"] = Tenant.objects.filter(slug=self.kwargs["tenant_slug"]).first()
        return context


@settings_page
def api_keys(request):
    form = ApiKeyForm(posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            api_key, raw_key = api_key_create(
                tenant=request.tenant,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                created_by=request.user,
            )
        except InvalidScopes as exc:
            form.add_error("scopes", str(exc))
        else:
            request.session[NEW_KEY_SESSION] = {"id": api_key.pk, "raw": raw_key}
            return back(request, "settings-api-key-created", api_key.pk)
    keys = ApiKey.objects.for_tenant(request.tenant).select_related("created_by")
    return render(request, "settings/api_keys.html", {"form": form, "keys": keys})


@never_cache
@settings_page
def api_key_created(request, pk):
    """The one page that shows a new key. Taking the key out of the session makes a reload show nothing."""
    api_key = get_object_or_404(ApiKey.objects.for_tenant(request.tenant), pk=pk)
    pending = request.session.get(NEW_KEY_SESSION)
    raw_key = None
    if pending and pending["id"] == api_key.pk:
        raw_key = pending["raw"]
        del request.session[NEW_KEY_SESSION]
    return render(request, "settings/api_key_created.html", {"api_key": api_key, "raw_key": raw_key})


@require_POST
@settings_page
def api_key_delete(request, pk):
    api_key = get_object_or_404(ApiKey.objects.for_tenant(request.tenant), pk=pk)
    if api_key_revoke(tenant=request.tenant, api_key=api_key, actor=request.user):
        messages.success(request, f"Revoked {api_key.name} ({api_key.prefix}…). Requests with it now fail.")
    else:
        messages.error(request, f"{api_key.name} was already revoked.")
    return back(request, "settings-api-keys")


def as_json(value):
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


MISSING = object()


def audit_value_text(value):
    """A recorded value as the log shows it: text as it is, a list of plain values joined, the rest as JSON."""
    if value is MISSING or value is None:
        return "(none)"
    if value == "":
        return "(empty)"
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, (str, int, float)) for item in value):
        return ", ".join(str(item) for item in value) or "(none)"
    return json.dumps(value, ensure_ascii=False, default=str)


def audit_fields(before, after):
    """What an entry records, field by field: [(name, before, after)] as text, None on the side it lacks.

    A change lists only the fields whose values differ; a creation or a deletion, every field it recorded.
    A record that is not a set of fields stands as one row without a name.
    """
    if not all(isinstance(side, (dict, type(None))) for side in (before, after)):
        return [("", *(None if side is None else audit_value_text(side) for side in (before, after)))]
    if before is None or after is None:
        side = before if after is None else after
        rows = [(name, audit_value_text(value)) for name, value in (side or {}).items()]
        return [(name, text, None) if after is None else (name, None, text) for name, text in rows]
    names = list(before) + [name for name in after if name not in before]
    return [
        (name, audit_value_text(before.get(name, MISSING)), audit_value_text(after.get(name, MISSING)))
        for name in names
        if before.get(name, MISSING) != after.get(name, MISSING)
    ]


@settings_page
def audit_log(request):
    entries = AuditLogEntry.objects.for_tenant(request.tenant)
    form = AuditFilterForm(request.GET, entries=entries)
    shown = form.filter(entries)
    page = Paginator(shown.select_related("actor"), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    for entry in page:
        entry.fields = audit_fields(entry.before, entry.after)
        entry.before_text, entry.after_text = as_json(entry.before), as_json(entry.after)
    filtered = any(form.cleaned_data.values())
    return render(request, "settings/audit_log.html", {"form": form, "page": page, "filtered": filtered})
