"""Tenant scoping is enforced in one place, and these tests keep it that way."""

import ast
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.views import APIView

from csplatform.tenancy.api.viewsets import TenantAPIView, TenantModelViewSet, TenantScopedMixin
from csplatform.tenancy.models import TenantModel

SOURCE_ROOTS = ["csplatform", "lifecycle", "health", "playbooks", "alerts"]
# Creating rows is not a read: the tenant foreign key is required, so a
# create without a tenant fails on its own.
SCOPED_MANAGER_CALLS = {"for_tenant", "dangerously_all_tenants", "create", "bulk_create"}

# The schema views are public and hold no tenant data.
PUBLIC_VIEWS = {"SpectacularAPIView", "SpectacularSwaggerSplitView"}


def tenant_model_names():
    return {model.__name__ for model in apps.get_models() if issubclass(model, TenantModel)}


def project_sources():
    for root in SOURCE_ROOTS:
        for path in (Path(settings.BASE_DIR) / root).rglob("*.py"):
            if "migrations" not in path.parts:
                yield path


def viewset_querysets(tree):
    """Nodes of `queryset = ...` class attributes: the locked base viewset scopes them."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for statement in node.body:
                if isinstance(statement, ast.Assign) and any(
                    isinstance(target, ast.Name) and target.id == "queryset" for target in statement.targets
                ):
                    yield from ast.walk(statement.value)


def unscoped_manager_uses(path, model_names):
    """`Model.objects.<x>` on a tenant model where <x> is not a scoping call."""
    tree = ast.parse(path.read_text(), filename=str(path))
    scoped_by_base = {id(node) for node in viewset_querysets(tree)}
    for node in ast.walk(tree):
        if id(node) in scoped_by_base:
            continue
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr in ("objects", "_default_manager")
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id in model_names
            and node.attr not in SCOPED_MANAGER_CALLS
        ):
            yield f"{path.relative_to(settings.BASE_DIR)}:{node.lineno}: {node.value.value.id}.{node.value.attr}.{node.attr}"


def test_every_tenant_model_query_in_the_code_is_scoped():
    names = tenant_model_names()
    offenders = [hit for path in project_sources() for hit in unscoped_manager_uses(path, names)]
    assert offenders == [], "Unscoped queries of tenant models:\n" + "\n".join(offenders)


def routed_views(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from routed_views(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def test_every_routed_api_view_is_tenant_scoped():
    unscoped = []
    for route, callback in routed_views():
        view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        if view_class is None or not issubclass(view_class, APIView):
            continue
        if issubclass(view_class, (TenantScopedMixin, TenantAPIView)) or view_class.__name__ in PUBLIC_VIEWS:
            continue
        unscoped.append(f"{route} -> {view_class.__name__}")
    assert unscoped == [], "API views not built on the tenant-scoped base:\n" + "\n".join(unscoped)


def test_a_viewset_that_overrides_get_queryset_is_refused_at_import():
    with pytest.raises(TypeError, match="may not override get_queryset"):

        class LeakyViewSet(TenantModelViewSet):
            def get_queryset(self):
                return []
