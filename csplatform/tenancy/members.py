"""Writes on a tenant's members: invite, change role or working hours, remove. Each is audited.

A tenant always keeps at least one admin, so nobody can lock the team out
of its own settings.
"""

from django.core.exceptions import ValidationError
from django.db import transaction

from .models import Membership, Role, User
from .services import audit_record, membership_snapshot

LAST_ADMIN = "A team needs at least one admin; make someone else admin first."
HOURS_FIELDS = ("timezone", "work_start_hour", "work_end_hour", "work_days", "daily_digest")


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
    *, tenant, membership, actor, timezone, work_start_hour, work_end_hour, work_days, daily_digest
):
    """Set when a member works: their time zone ('' for the tenant's), start and end hour, and weekdays (Monday = 0);
    and whether their daily digest is sent as that day starts.

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
