from django.db import transaction
from django.utils import timezone

from .models import (
    API_KEY_PREFIX_LENGTH,
    SYSTEM_ACTOR_LABEL,
    ApiKey,
    AuditLogEntry,
    Membership,
    Scope,
    Tenant,
    User,
    hash_api_key,
)


class InvalidScopes(ValueError):
    pass


@transaction.atomic
def tenant_create(*, slug, name, timezone_name="UTC"):
    tenant = Tenant(slug=slug, name=name, timezone=timezone_name)
    tenant.full_clean()
    tenant.save()
    return tenant


@transaction.atomic
def membership_set(*, tenant, user, role, actor=None):
    """Give `user` the `role` in `tenant`, adding them as a member if needed; a change is audited."""
    memberships = Membership.objects.for_tenant(tenant).select_for_update().select_related("user")
    membership = memberships.filter(user=user).first()
    before = membership_snapshot(membership) if membership else None
    if membership is None:
        membership = Membership.objects.create(tenant=tenant, user=user, role=role)
    elif membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    else:
        return membership
    audit_record(
        tenant=tenant, actor=actor, action="member.set", obj=membership, before=before,
        after=membership_snapshot(membership),
    )
    return membership


def membership_snapshot(membership, fields=("role",)):
    """What the audit log records of a membership: the member's email and these fields."""
    return {"email": membership.user.email, **{name: getattr(membership, name) for name in fields}}


def user_get_or_create(*, email, name="", password=None):
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User.objects.create_user(email=email, password=password, name=name)
    return user


def normalise_scopes(scopes):
    valid = set(Scope.values)
    scopes = sorted({s.strip() for s in scopes if s.strip()})
    unknown = [s for s in scopes if s not in valid]
    if unknown or not scopes:
        raise InvalidScopes(
            f"Unknown scope(s): {', '.join(unknown)}. Choose from {', '.join(Scope.values)}."
            if unknown
            else f"At least one scope is required: {', '.join(Scope.values)}."
        )
    return scopes


@transaction.atomic
def api_key_create(*, tenant, name, scopes, created_by=None):
    """Create a key and return `(api_key, raw_key)`. The raw key is never stored."""
    raw_key = ApiKey.generate_raw_key()
    api_key = ApiKey.objects.create(
        tenant=tenant,
        name=name,
        prefix=raw_key[:API_KEY_PREFIX_LENGTH],
        key_hash=hash_api_key(raw_key),
        scopes=normalise_scopes(scopes),
        created_by=created_by,
    )
    audit_record(
        tenant=tenant,
        actor=created_by,
        action="api_key.created",
        obj=api_key,
        after={"name": name, "prefix": api_key.prefix, "scopes": api_key.scopes},
    )
    return api_key, raw_key


@transaction.atomic
def api_key_revoke(*, tenant, api_key, actor=None):
    revoked_at = timezone.now()
    updated = ApiKey.objects.for_tenant(tenant).active().filter(pk=api_key.pk).update(revoked_at=revoked_at)
    if updated:
        audit_record(
            tenant=tenant, actor=actor, action="api_key.revoked", obj=api_key, before={"active": True},
            after={"active": False, "revoked_at": revoked_at.isoformat()},
        )
    return bool(updated)


def api_key_authenticate(raw_key):
    """The active key for a raw key, or None. Marks it used at most once a minute."""
    api_key = ApiKey.objects.dangerously_all_tenants().active().select_related("tenant").filter(
        key_hash=hash_api_key(raw_key)
    ).first()
    if api_key is None:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.for_tenant(api_key.tenant_id).filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def audit_actor_label(actor):
    """Who made a change, in words; an API change names the key too (see api.authentication.acting_user)."""
    if actor is None:
        return SYSTEM_ACTOR_LABEL
    api_key = getattr(actor, "via_api_key", None)
    if api_key is None:
        return str(actor)
    return f"{actor} via key {api_key.name} ({api_key.prefix}…)"[:200]


def audit_record(*, tenant, action, obj, actor=None, before=None, after=None):
    return AuditLogEntry.objects.create(
        tenant=tenant,
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=audit_actor_label(actor),
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk or ""),
        object_repr=str(obj)[:200],
        before=before,
        after=after,
    )
