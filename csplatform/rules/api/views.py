from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.response import Response

from csplatform.tenancy.api.viewsets import TenantModelViewSet

from .. import services
from ..metrics import builtin_metrics
from ..models import MetricDefinition
from .filtersets import MetricDefinitionFilterSet
from .serializers import BuiltinMetricSerializer, MetricDefinitionSerializer


class MetricDefinitionViewSet(TenantModelViewSet):
    """The tenant's own metrics, read in criteria as `metric.<key>` or `contact.metric.<key>`."""

    queryset = MetricDefinition.objects
    serializer_class = MetricDefinitionSerializer
    filterset_class = MetricDefinitionFilterSet

    def perform_destroy(self, instance):
        services.metric_definition_delete(tenant=self.tenant, definition=instance)

    @extend_schema(responses=BuiltinMetricSerializer(many=True), filters=False)
    @action(detail=False, methods=["get"], pagination_class=None, filterset_class=None)
    def builtin(self, request):
        """The metrics every account and contact has without any definition."""
        return Response(BuiltinMetricSerializer(builtin_metrics(), many=True).data)
