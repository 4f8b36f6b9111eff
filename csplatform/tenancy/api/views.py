from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from .serializers import WhoAmISerializer
from .viewsets import TenantAPIView


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
