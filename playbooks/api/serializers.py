import uuid

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from csplatform.customers.api.serializers import RejectUnknownFieldsMixin
from csplatform.customers.models import Account
from csplatform.tenancy.api.authentication import acting_user
from csplatform.tenancy.api.fields import TenantMemberField, TenantPrimaryKeyRelatedField

from ..models import EnrollmentPolicy, ExpansionOpportunity, OutboundEmail, Playbook, Run, StepRun, Task, TriggerType
from ..services import playbook_create, playbook_steps, playbook_update, task_create_once


def api_actor(context):
    return acting_user(context["request"])


def raise_as_api_error(exc):
    raise serializers.ValidationError(exc.message_dict) from exc


class StepInputSerializer(serializers.Serializer):
    """Shape only: each kind's config is checked by the service, which names the step index on error."""

    kind = serializers.CharField()
    delay_minutes = serializers.IntegerField(required=False, default=0)
    config = serializers.JSONField(required=False, default=dict)


class PlaybookSerializer(serializers.ModelSerializer):
    trigger_type = serializers.ChoiceField(choices=TriggerType.choices)
    enrollment_policy = serializers.ChoiceField(choices=EnrollmentPolicy.choices, required=False)
    steps = serializers.ListField(child=serializers.DictField(), write_only=True, required=False)
    step_list = serializers.SerializerMethodField()

    class Meta:
        model = Playbook
        fields = [
            "id",
            "key",
            "name",
            "description",
            "enabled",
            "trigger_type",
            "trigger_config",
            "audience_text",
            "exit_criteria_text",
            "enrollment_policy",
            "again_after_days",
            "steps",
            "step_list",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        validators = []

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_step_list(self, playbook):
        return [
            {"position": s.position, "kind": s.kind, "delay_minutes": s.delay_minutes, "config": s.config}
            for s in playbook_steps(playbook.tenant_id, playbook)
        ]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["steps"] = data.pop("step_list")
        return data

    def validate_steps(self, steps):
        # Step dicts are passed on whole: the service validates kind and config per step.
        return steps

    def create(self, validated_data):
        tenant = validated_data.pop("tenant")
        if "steps" not in validated_data:
            raise serializers.ValidationError({"steps": ["A playbook needs at least one step."]})
        try:
            return playbook_create(tenant=tenant, actor=api_actor(self.context), **validated_data)
        except DjangoValidationError as exc:
            raise_as_api_error(exc)

    def update(self, instance, validated_data):
        try:
            return playbook_update(
                tenant=instance.tenant, playbook=instance, actor=api_actor(self.context), **validated_data
            )
        except DjangoValidationError as exc:
            raise_as_api_error(exc)


class StepRunSerializer(serializers.ModelSerializer):
    position = serializers.IntegerField(source="step.position", read_only=True)
    kind = serializers.CharField(source="step.kind", read_only=True)

    class Meta:
        model = StepRun
        fields = [
            "id",
            "sequence",
            "position",
            "kind",
            "due_at",
            "status",
            "attempts",
            "claimed_at",
            "finished_at",
            "outcome",
            "error",
        ]


class RunSerializer(serializers.ModelSerializer):
    playbook = serializers.SlugRelatedField(slug_field="key", read_only=True)
    steps = StepRunSerializer(source="step_runs", many=True, read_only=True)

    class Meta:
        model = Run
        fields = [
            "id",
            "playbook",
            "account",
            "status",
            "trigger_stage_key",
            "started_at",
            "ended_at",
            "reason",
            "steps",
        ]


@extend_schema_field(serializers.IntegerField())
class TenantAccountField(serializers.PrimaryKeyRelatedField):
    """An account id looked up only among the request tenant's accounts."""

    def get_queryset(self):
        return Account.objects.for_tenant(self.context["tenant"])


class StartRunSerializer(serializers.Serializer):
    account = TenantAccountField()


class SimulateSerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=365, default=90)


class TaskSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    account = TenantPrimaryKeyRelatedField(
        queryset=Account.objects, required=False, allow_null=True,
        error_messages={"does_not_exist": "No account has the id {pk_value}."},
        help_text="The account's id, as the accounts list gives it; none for a task of no account.",
    )
    owner = TenantMemberField(
        required=False, allow_null=True,
        help_text="The member who does it, by email; on create, by default the account's owner, else the key's "
        "creator.",
    )
    key = serializers.CharField(
        write_only=True, required=False, max_length=100,
        help_text="Optional, on create: a task sent again with the same key is created once.",
    )

    class Meta:
        model = Task
        fields = [
            "id", "account", "owner", "title", "description", "due_at", "completed_at", "source", "created_at", "key"
        ]
        read_only_fields = ["id", "completed_at", "source", "created_at"]

    def create(self, validated_data):
        """The task, for its owner, told to them in the app when someone else gave it (`task_create_once`)."""
        creator = api_actor(self.context)
        account = validated_data.get("account")
        return task_create_once(
            tenant=validated_data["tenant"],
            key=f"api:{validated_data.get('key') or uuid.uuid4()}",
            account=account,
            owner=validated_data.get("owner") or getattr(account, "owner", None) or creator,
            title=validated_data["title"],
            description=validated_data.get("description", ""),
            due_at=validated_data.get("due_at"),
            source="api",
            given_by=creator,
        )


class ReassignSerializer(serializers.Serializer):
    owner = TenantMemberField()


class RescheduleSerializer(serializers.Serializer):
    due_at = serializers.DateTimeField(allow_null=True, help_text="When the task is due; null for no date.")


class OutboundEmailSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="email", read_only=True)

    class Meta:
        model = OutboundEmail
        fields = [
            "id",
            "account",
            "owner",
            "contact",
            "from_email",
            "to_email",
            "reply_to",
            "subject",
            "text",
            "html",
            "status",
            "idempotency_key",
            "created_at",
            "sent_at",
            "attempts",
            "error",
        ]


class EmailEditSerializer(serializers.Serializer):
    subject = serializers.CharField(max_length=500, required=False)
    text = serializers.CharField(required=False)
    html = serializers.CharField(required=False, allow_blank=True)


class ExpansionOpportunitySerializer(serializers.ModelSerializer):
    class Meta:
        model = ExpansionOpportunity
        fields = ["id", "account", "title", "note", "source", "created_at"]
