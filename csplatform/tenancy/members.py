"""Writes on a tenant's members: invite (and the invitation email), change role or working hours, remove. Each write is
audited.

A tenant always keeps at least one admin, so nobody can lock the team out
of its own settings.
"""

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from .models import Membership, Role, User
from .services import audit_record, membership_snapshot

LAST_ADMIN = "A team needs at least one admin; make someone else admin first."
HOURS_FIELDS = ("timezone", "work_start_hour", "work_end_hour", "work_days", "daily_digest", "email_when_told")


def _other_admins(tenant, membership):
    return Membership.objects.for_tenant(tenant).filter(role=Role.ADMIN).exclude(pk=membership.pk)


@transaction.atomic
def member_invite(*, tenant, email, role, actor, name=""):
    """Add `email` to the tenant with `role`, creating the user (with no usable password) if needed.

    Returns `(membership, created_user)`; a new user sets a password from the
    invitation email.
    """
    email = User.objects.normalize_email(email).lower()
    user = User.objects.filter(email__iexact=email).first()
    created_user = user is None
    if created_user:
        user = User.objects.create_user(email=email, password=None, name=name)
    elif Membership.objects.for_tenant(tenant).filter(user=user).exists():
        raise ValidationError({"email": f"{email} is already a member of this team."})
    membership = Membership.objects.create(tenant=tenant, user=user, role=role)
    audit_record(
        tenant=tenant, actor=actor, action="member.invited", obj=membership, after=membership_snapshot(membership)
    )
    return membership, created_user


def link_valid_days():
    """For how many days a link that sets a password works, as its pages and emails say."""
    return max(1, settings.PASSWORD_RESET_TIMEOUT // (24 * 3600))


def invitation_send(*, membership, created_user, inviter, base_url):
    """Email a new member: a set-password link for a new user, a sign-in link for an existing one.

    `base_url` is the site's address the links start with; `inviter` is the
    member who invited them, or None for an operator's command. Returns the link.
    """
    user, tenant = membership.user, membership.tenant
    if created_user:
        uid = urlsafe_base64_encode(force_bytes(user.pk))
        path = reverse("settings-join", args=[tenant.slug, uid, default_token_generator.make_token(user)])
    else:
        path = reverse("portfolio", args=[tenant.slug])
    link = f"{base_url}{path}"
    context = {
        "tenant": tenant,
        "inviter": inviter,
        "role": membership.get_role_display(),
        "link": link,
        "created_user": created_user,
        "valid_days": link_valid_days(),
    }
    send_mail(
        subject=f"You have been added to {tenant.name} on csplatform",
        message=render_to_string("settings/emails/invitation.txt", context),
        from_email=None,
        recipient_list=[user.email],
    )
    return link


@transaction.atomic
def member_role_change(*, tenant, membership, role, actor):
    membership = Membership.objects.for_tenant(tenant).select_for_update().select_related("user").get(pk=membership.pk)
    if membership.role == role:
        return membership
    if membership.role == Role.ADMIN and not _other_admins(tenant, membership).exists():
        raise ValidationError({"role": LAST_ADMIN})
    before = membership_snapshot(membership)
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        tenant=tenant, actor=actor, action="member.role_changed", obj=membership, before=before,
        after=membership_snapshot(membership),
    )
    return membership


@transaction.atomic
def member_hours_change(
    *, tenant, membership, actor, timezone, work_start_hour, work_end_hour, work_days, daily_digest, email_when_told
):
    """Set when a member works: their time zone ('' for the tenant's), start and end hour, and weekdays (Monday = 0);
    whether their daily digest is sent as that day starts, and whether what teammates address to them is emailed.

    The model validates the values (a known zone, the end after the start,
    at least one day) and raises ValidationError naming the field.
    """
    membership = Membership.objects.for_tenant(tenant).select_for_update().select_related("user").get(pk=membership.pk)
    before = membership_snapshot(membership, HOURS_FIELDS)
    membership.timezone = timezone
    membership.work_start_hour = work_start_hour
    membership.work_end_hour = work_end_hour
    membership.work_days = sorted(set(work_days))
    membership.daily_digest = daily_digest
    membership.email_when_told = email_when_told
    after = membership_snapshot(membership, HOURS_FIELDS)
    if after == before:
        return membership
    membership.full_clean()
    membership.save(update_fields=HOURS_FIELDS)
    audit_record(tenant=tenant, actor=actor, action="member.hours_changed", obj=membership, before=before, after=after)
    return membership


@transaction.atomic
def member_remove(*, tenant, membership, actor):
    """Remove a member from the tenant; the user and their other tenants stay."""
    membership = Membership.objects.for_tenant(tenant).select_for_update().select_related("user").get(pk=membership.pk)
    if membership.role == Role.ADMIN and not _other_admins(tenant, membership).exists():
        raise ValidationError({"role": LAST_ADMIN})
    audit_record(
        tenant=tenant, actor=actor, action="member.removed", obj=membership, before=membership_snapshot(membership)
    )
    membership.delete()
