"""The locked base for every tenant API view.

The tenant comes from the API key, never from the URL or the body. Subclasses
declare `queryset`, `serializer_class` and `filterset_class` and nothing more:
defining `get_queryset`, `get_object` or `perform_create` raises at import, so
no view can forget or undo the tenant filter.
"""

from contextlib import ExitStack

from rest_framework import viewsets
from rest_framework.views import APIView

from ..rls import tenant_context

LOCKED_METHODS = ("get_queryset", "get_object", "perform_create", "get_serializer_context")


class TenantRowSecurityMixin:
    """Once the API key has named the tenant, limit the database session to it (PostgreSQL RLS)."""

    # The scope HasApiKeyScope asks for; None means by method. Declared here so
    # an `@action(required_scope=...)` may set it for one action.
    required_scope = None

    def dispatch(self, request, *args, **kwargs):
        with ExitStack() as self.tenant_scope:
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if request.auth is not None:
            self.tenant_scope.enter_context(tenant_context(request.auth.tenant_id))


class TenantScopedMixin(TenantRowSecurityMixin):
    queryset = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in LOCKED_METHODS:
            if name in cls.__dict__:
                raise TypeError(f"{cls.__name__} may not override {name}(): tenant scoping lives in the base class.")

    @property
    def tenant(self):
        return self.request.auth.tenant

    def get_queryset(self):
        return self.queryset.for_tenant(self.tenant)

    def get_object(self):
        return super().get_object()

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if getattr(self, "request", None) is not None and self.request.auth is not None:
            context["tenant"] = self.tenant
        return context

    def perform_create(self, serializer):
        serializer.save(tenant=self.tenant)


class TenantModelViewSet(TenantScopedMixin, viewsets.ModelViewSet):
    pass


class TenantReadOnlyViewSet(TenantScopedMixin, viewsets.ReadOnlyModelViewSet):
    pass


class TenantAPIView(TenantRowSecurityMixin, APIView):
    """An endpoint that is not a model collection (ingest, previews, actions).

    The tenant is `self.tenant`, taken from the API key; the view hands it to
    services explicitly.
    """

    @property
    def tenant(self):
        return self.request.auth.tenant
