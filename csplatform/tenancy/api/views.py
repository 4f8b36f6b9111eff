from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.response import Response

from ..models import AuditLogEntry
from .filtersets import AuditLogFilterSet
from .pagination import NewestFirstCursorPagination
from .serializers import AuditLogEntrySerializer, WhoAmISerializer
from .viewsets import TenantAPIView, TenantScopedMixin


class WhoAmIView(TenantAPIView):
    """The tenant and scopes of the API key making the request."""

    @extend_schema(responses=WhoAmISerializer)
    def get(self, request):
        api_key = request.auth
        data = {
            "tenant": self.tenant,
            "key_name": api_key.name,
            "key_prefix": api_key.prefix,
            "scopes": api_key.scopes,
        }
        return Response(WhoAmISerializer(data).data)


class AuditLogCursorPagination(NewestFirstCursorPagination):
    ordering = ("-created_at", "-id")


class AuditLogViewSet(TenantScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Every configuration change, newest first, as Settings → Audit log lists it: who made it, when, and the
    object's record before and after (never a secret). Keep the time of the latest entry read and pass it as
    `since` next time to read only the newer ones."""

    queryset = AuditLogEntry.objects
    serializer_class = AuditLogEntrySerializer
    filterset_class = AuditLogFilterSet
    pagination_class = AuditLogCursorPagination
