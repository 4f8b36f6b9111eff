"""Every tenant table is indexed by keys that start with the tenant (DESIGN.md, Tenancy)."""

from django.apps import apps
from django.db.models import UniqueConstraint

from csplatform.tenancy.models import TenantModel


def tenant_tables():
    return [model for model in apps.get_models() if issubclass(model, TenantModel)]


def whole_table_keys(model):
    """The column lists of the model's indexes and unique keys that cover every row (partial ones do not)."""
    fields = {field.name: field.column for field in model._meta.local_fields}
    for field in model._meta.local_fields:
        if (field.db_index or field.unique) and not field.primary_key:
            yield (field.column,)
    for index in model._meta.indexes:
        if index.condition is None:
            yield tuple(fields[name.lstrip("-")] for name in index.fields)
    for constraint in model._meta.constraints:
        if isinstance(constraint, UniqueConstraint) and constraint.condition is None and constraint.fields:
            yield tuple(fields[name] for name in constraint.fields)


def test_every_tenant_table_has_a_whole_table_key_that_starts_with_the_tenant():
    unreachable = [
        model.__name__ for model in tenant_tables() if not any(key[0] == "tenant_id" for key in whole_table_keys(model))
    ]
    assert unreachable == [], "Tenant tables without a key starting with the tenant: " + ", ".join(unreachable)


def test_no_tenant_table_indexes_the_tenant_alone_beside_a_longer_key_that_starts_with_it():
    doubled = [
        model.__name__
        for model in tenant_tables()
        if ("tenant_id",) in (keys := list(whole_table_keys(model)))
        and any(len(key) > 1 and key[0] == "tenant_id" for key in keys)
    ]
    assert doubled == [], "Tenant tables that also index the tenant alone: " + ", ".join(doubled)
