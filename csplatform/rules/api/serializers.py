from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from .. import services
from ..models import MAX_WINDOW_DAYS, MetricDefinition


def _as_drf_error(exc):
    return serializers.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)


class MetricDefinitionSerializer(serializers.ModelSerializer):
    """A tenant metric. Field types are checked here; the rules that span fields live in the services."""

    event_names = serializers.ListField(
        child=serializers.CharField(max_length=200),
        allow_empty=False,
        max_length=50,
        help_text="Events that count towards the metric.",
    )
    window_days = serializers.IntegerField(min_value=1, max_value=MAX_WINDOW_DAYS, default=30)

    class Meta:
        model = MetricDefinition
        fields = [
            "id",
            "key",
            "label",
            "subject",
            "event_names",
            "window_days",
            "aggregation",
            "property",
            "description",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_event_names(self, value):
        # Keep the client's order but store each name once.
        return list(dict.fromkeys(value))

    def create(self, validated_data):
        tenant = validated_data.pop("tenant")
        try:
            return services.metric_definition_create(tenant=tenant, fields=validated_data)
        except DjangoValidationError as exc:
            raise _as_drf_error(exc) from exc

    def update(self, instance, validated_data):
        try:
            return services.metric_definition_update(
                tenant=self.context["tenant"], definition=instance, fields=validated_data
            )
        except DjangoValidationError as exc:
            raise _as_drf_error(exc) from exc


class BuiltinMetricSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    subject = serializers.CharField()
