from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from csplatform.tenancy.api.authentication import acting_user
from csplatform.tenancy.api.fields import TenantRelatedField

from ..models import Stage, StageTransition
from ..services import stage_create, stage_update
from ..templates import TEMPLATES_BY_KEY


def api_actor(context):
    """The user behind the request's API key, for the audit log and transitions."""
    return acting_user(context["request"])


def raise_as_api_error(exc):
    raise serializers.ValidationError(exc.message_dict) from exc


class StageSerializer(serializers.ModelSerializer):
    cycle_to = TenantRelatedField(queryset=Stage.objects, slug_field="key", required=False, allow_null=True)
    entry_criteria_text = serializers.CharField(required=False, allow_blank=True)

    class Meta:
        model = Stage
        fields = [
            "id",
            "key",
            "name",
            "description",
            "colour",
            "position",
            "entry_criteria_text",
            "entry_criteria",
            "entered_from_any_earlier",
            "is_initial",
            "is_terminal",
            "outcome",
            "expected_days",
            "cycle_to",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["entry_criteria", "created_at", "updated_at"]
        # Uniqueness of the key is checked by the service, inside its transaction.
        validators = []

    def create(self, validated_data):
        tenant = validated_data.pop("tenant")
        try:
            return stage_create(tenant=tenant, actor=api_actor(self.context), **validated_data)
        except DjangoValidationError as exc:
            raise_as_api_error(exc)

    def update(self, instance, validated_data):
        try:
            return stage_update(tenant=instance.tenant, stage=instance, actor=api_actor(self.context), **validated_data)
        except DjangoValidationError as exc:
            raise_as_api_error(exc)


class ReorderSerializer(serializers.Serializer):
    keys = serializers.ListField(child=serializers.SlugField(), allow_empty=False)


class ApplyTemplateSerializer(serializers.Serializer):
    template = serializers.ChoiceField(choices=sorted(TEMPLATES_BY_KEY))
    mapping = serializers.DictField(child=serializers.SlugField(), required=False)


class MoveStageSerializer(serializers.Serializer):
    stage = TenantRelatedField(queryset=Stage.objects, slug_field="key")
    reason = serializers.CharField()


class RenewSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, default="Renewed.")


class StageTransitionSerializer(serializers.ModelSerializer):
    class Meta:
        model = StageTransition
        fields = [
            "id",
            "account",
            "from_key",
            "to_key",
            "at",
            "kind",
            "by_user",
            "reason",
            "explanation",
        ]
        read_only_fields = fields


class CriteriaValidateSerializer(serializers.Serializer):
    text = serializers.CharField(allow_blank=True, trim_whitespace=False)
    subject = serializers.ChoiceField(choices=["account", "contact"], default="account")


class CriteriaPreviewSerializer(serializers.Serializer):
    text = serializers.CharField()
