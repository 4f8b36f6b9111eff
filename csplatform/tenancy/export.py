"""A tenant's data is the tenant's: export all of it, or delete all of it.

Both walk every tenant model, so a model added later is exported and
deleted without a change here.
"""

import datetime as dt
import json

from django.apps import apps
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import PROTECT, RESTRICT, ForeignKey

from .models import ApiKey, Membership, TenantModel, User
from .rls import tenant_context

# Credentials stay out of an export even in hashed form.
SECRET_FIELDS = {ApiKey: {"key_hash"}}
USER_FIELDS = ("id", "email", "name", "date_joined")
EXPORT_CHUNK = 2000


def tenant_models():
    return sorted((m for m in apps.get_models() if issubclass(m, TenantModel)), key=lambda m: m._meta.label)


def _line(record):
    return json.dumps(record, cls=DjangoJSONEncoder, ensure_ascii=False) + "\n"


def tenant_export_lines(tenant):
    """Yield the tenant's data as JSON lines: one header, then one line per row of every tenant model.

    `{"model": "customers.Account", "pk": 12, "fields": {...}}`; the members'
    users come as `tenancy.User` lines without password hashes. Rows are read
    in chunks, so a large tenant streams in constant memory.
    """
    with tenant_context(tenant):
        yield _line(
            {
                "model": "tenancy.Tenant",
                "pk": tenant.pk,
                "fields": {"slug": tenant.slug, "name": tenant.name, "timezone": tenant.timezone},
                "exported_at": dt.datetime.now(dt.timezone.utc),
            }
        )
        member_ids = Membership.objects.for_tenant(tenant).values("user_id")
        for user in User.objects.filter(pk__in=member_ids).order_by("pk").values(*USER_FIELDS):
            yield _line({"model": "tenancy.User", "pk": user.pop("id"), "fields": user})
        for model in tenant_models():
            hidden = SECRET_FIELDS.get(model, set()) | {model._meta.pk.attname}
            rows = model.objects.for_tenant(tenant).order_by("pk").values().iterator(chunk_size=EXPORT_CHUNK)
            for row in rows:
                fields = {name: value for name, value in row.items() if name not in hidden}
                yield _line({"model": model._meta.label, "pk": row[model._meta.pk.attname], "fields": fields})


def _protects(child, parent):
    """Whether rows of `child` block deleting rows of `parent` (PROTECT/RESTRICT foreign keys)."""
    return any(
        isinstance(f, ForeignKey) and f.related_model is parent and f.remote_field.on_delete in (PROTECT, RESTRICT)
        for f in child._meta.concrete_fields
    )


def deletion_order():
    """Tenant models, each after every model whose protecting references point at it.

    Other references cascade or go null as their model says, so only
    PROTECT/RESTRICT decide the order.
    """
    remaining = tenant_models()
    ordered = []
    while remaining:
        free = next(
            (m for m in remaining if not any(o is not m and _protects(o, m) for o in remaining)),
            None,
        )
        if free is None:
            raise RuntimeError(f"Protected references form a cycle among {[m._meta.label for m in remaining]}")
        ordered.append(free)
        remaining.remove(free)
    return ordered


@transaction.atomic
def tenant_delete(*, tenant):
    """Delete every row of the tenant and the tenant itself; returns {model label: rows deleted}.

    Model by model, children first, so protected references never block and
    no row of another tenant is read. Users stay: they may belong to other tenants.
    """
    deleted = {}
    with tenant_context(tenant):
        for model in deletion_order():
            _, per_model = model.objects.for_tenant(tenant).delete()
            for label, count in per_model.items():
                deleted[label] = deleted.get(label, 0) + count
        tenant.delete()
    return deleted
