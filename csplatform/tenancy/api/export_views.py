from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema

from ..export import tenant_export_lines
from ..models import Scope
from .viewsets import TenantAPIView


class TenantExportView(TenantAPIView):
    """All of the key's tenant's data as JSON lines, streamed."""

    required_scope = Scope.READ

    @extend_schema(
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR,
                description='One JSON object per line: `{"model": "customers.Account", "pk": 1, "fields": {...}}`.',
            )
        }
    )
    def get(self, request):
        response = StreamingHttpResponse(tenant_export_lines(self.tenant), content_type="application/x-ndjson")
        response["Content-Disposition"] = f'attachment; filename="{self.tenant.slug}.jsonl"'
        return response
