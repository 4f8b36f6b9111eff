"""The pipeline's one endpoint: how fresh the key's tenant's results are."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from csplatform.models import PassStatus
from csplatform.pipeline import pipeline_freshness
from csplatform.tenancy.api.viewsets import TenantAPIView


class PassSerializer(serializers.Serializer):
    opened_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True, help_text="Null while the pass runs.")
    seconds = serializers.FloatField(allow_null=True, help_text="How long it took; null while it runs.")
    accounts = serializers.IntegerField(help_text="Accounts recomputed (so far, while it runs).")
    moved = serializers.IntegerField(help_text="Accounts that changed stage.")
    chunks_done = serializers.IntegerField()
    chunks_taken = serializers.IntegerField()
    status = serializers.ChoiceField(choices=PassStatus.choices)


class FreshnessSerializer(serializers.Serializer):
    checked_at = serializers.DateTimeField()
    waiting_accounts = serializers.IntegerField(help_text="Accounts changed since they were last recomputed.")
    current_as_of = serializers.DateTimeField(
        help_text="Every change committed before this moment is in the metrics, health, stages, segments and alerts."
    )
    behind_seconds = serializers.FloatField(
        help_text="`checked_at` minus `current_as_of`: how old the oldest change still waiting may be."
    )
    running = PassSerializer(allow_null=True, help_text="The pass in progress, if any.")
    recent_passes = PassSerializer(many=True, help_text="The latest ended passes, newest first.")


class PipelineFreshnessView(TenantAPIView):
    """How far the tenant's computed results are behind its data, and the pipeline's latest passes."""

    @extend_schema(responses=FreshnessSerializer)
    def get(self, request):
        return Response(FreshnessSerializer(pipeline_freshness(tenant=self.tenant)).data)
