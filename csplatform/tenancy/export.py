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

from .models import Membership, TenantModel, User
from .rls import dangerously_bypass_rls, tenant_context

# Credentials stay out of an export, even hashed; a test fails when a model
# gains a field named like a secret that is neither listed here nor left out
# of USER_FIELDS. An incoming Slack webhook URL is itself a credential.
SECRET_FIELDS = {
    "tenancy.ApiKey": {"key_hash"},
    "alerts.WebhookSubscription": {"secret"},
    "alerts.AlertRule": {"slack_webhook_url"},
}
# The members' users without password hashes or permission flags.
USER_FIELDS = ("email", "name", "date_joined")
# Stands in for a secret value copied into another row (a notification's
# recipient, an audit snapshot, an error message).
HIDDEN = "[hidden]"
EXPORT_CHUNK = 2000


def tenant_models():
    return sorted((m for m in apps.get_models() if issubclass(m, TenantModel)), key=lambda m: m._meta.label)


def _line(record, secrets=()):
    line = json.dumps(record, cls=DjangoJSONEncoder, ensure_ascii=False)
    for secret in secrets:
        line = line.replace(secret, HIDDEN)
    return line + "\n"


def exported_fields(model):
    """The columns of `model` that an export holds: all but the primary key (given apart) and the secrets."""
    if model is User:
        return USER_FIELDS
    hidden = SECRET_FIELDS.get(model._meta.label, set())
    return [f.attname for f in model._meta.concrete_fields if not f.primary_key and f.attname not in hidden]


def _secret_values(tenant):
    """The tenant's secret values as they appear in JSON text, longest first, so that no shorter one splits a longer one."""
    values = set()
    for label, names in SECRET_FIELDS.items():
        for row in apps.get_model(label).objects.for_tenant(tenant).values_list(*names):
            values.update(value for value in row if value)
    return sorted((json.dumps(value, ensure_ascii=False)[1:-1] for value in values), key=len, reverse=True)


def tenant_export_lines(tenant):
    """Yield the tenant's data as JSON lines: one header, then one line per row of every tenant model.

    `{"model": "customers.Account", "pk": 12, "fields": {...}}`; the members'
    users come as `tenancy.User` lines without password hashes. Secret
    fields are left out, and their values are hidden wherever another row
    copied them. Rows are read in chunks, so a large tenant streams in
    constant memory.
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
        for user in User.objects.filter(pk__in=member_ids).order_by("pk").values("pk", *USER_FIELDS):
            yield _line({"model": "tenancy.User", "pk": user.pop("pk"), "fields": user})
        secrets = _secret_values(tenant)
        for model in tenant_models():
            rows = model.objects.for_tenant(tenant).order_by("pk").values("pk", *exported_fields(model))
            for row in rows.iterator(chunk_size=EXPORT_CHUNK):
                yield _line({"model": model._meta.label, "pk": row.pop("pk"), "fields": row}, secrets)


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
    no row of another tenant is read. Then the members' users who belong to
    no other tenant go too, as the export counted them the tenant's data;
    staff and superusers stay, as does anyone with another membership.
    """
    deleted = {}
    with tenant_context(tenant):
        member_ids = list(Membership.objects.for_tenant(tenant).values_list("user_id", flat=True))
        for model in deletion_order():
            _, per_model = model.objects.for_tenant(tenant).delete()
            for label, count in per_model.items():
                deleted[label] = deleted.get(label, 0) + count
        tenant.delete()
    # Whether a user has another membership is a question about every tenant.
    with dangerously_bypass_rls():
        orphans = User.objects.filter(pk__in=member_ids, is_staff=False, is_superuser=False, memberships__isnull=True)
        deleted[User._meta.label] = orphans.delete()[1].get(User._meta.label, 0)
    return deleted
