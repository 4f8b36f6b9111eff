from rest_framework import serializers


class TenantSummarySerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    timezone = serializers.CharField()


class WhoAmISerializer(serializers.Serializer):
    tenant = TenantSummarySerializer()
    key_name = serializers.CharField()
    key_prefix = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
