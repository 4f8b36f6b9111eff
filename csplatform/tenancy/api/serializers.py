from rest_framework import serializers

from ..models import AuditLogEntry


class TenantSummarySerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    timezone = serializers.CharField()


class WhoAmISerializer(serializers.Serializer):
    tenant = TenantSummarySerializer()
    key_name = serializers.CharField()
    key_prefix = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())


class AuditLogEntrySerializer(serializers.ModelSerializer):
    """A configuration change: who made it, when, on which object, and the object's record before and after."""

    at = serializers.DateTimeField(source="created_at")
    by = serializers.CharField(source="actor_label", help_text="Who made it, and through which API key; "
                               "\"system\" when the platform did.")
    by_email = serializers.EmailField(source="actor.email", allow_null=True, default=None)
    before = serializers.JSONField(help_text="The object's record before the change; null for a creation.")
    after = serializers.JSONField(help_text="The object's record after the change; null for a deletion.")

    class Meta:
        model = AuditLogEntry
        fields = ["id", "at", "by", "by_email", "action", "object_type", "object_id", "object_repr", "before", "after"]
