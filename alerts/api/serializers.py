from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from csplatform.tenancy.models import Role
from lifecycle.api.serializers import api_actor, raise_as_api_error

from .. import services, webhooks
from ..models import (
    Alert,
    AlertRule,
    Channel,
    Segment,
    SegmentMembership,
    Subject,
    WebhookDelivery,
    WebhookSubscription,
)


class ServiceWriteMixin:
    """create()/update() through the app's services, their ValidationErrors as API errors."""

    create_service = None
    update_service = None
    instance_name = None

    def create(self, validated_data):
        tenant = validated_data.pop("tenant")
        try:
            return type(self).create_service(tenant=tenant, actor=api_actor(self.context), **validated_data)
        except DjangoValidationError as exc:
            raise_as_api_error(exc)

    def update(self, instance, validated_data):
        try:
            return type(self).update_service(
                tenant=instance.tenant, actor=api_actor(self.context), **{self.instance_name: instance}, **validated_data
            )
        except DjangoValidationError as exc:
            raise_as_api_error(exc)


class SegmentSerializer(ServiceWriteMixin, serializers.ModelSerializer):
    criteria_text = serializers.CharField(
        help_text='Criteria over the subject, e.g. `stage == "onboarding" and contact.role == "administrator"`.'
    )
    member_count = serializers.IntegerField(read_only=True, help_text="Current members, as of the last refresh.")
    create_service = staticmethod(services.segment_create)
    update_service = staticmethod(services.segment_update)
    instance_name = "segment"

    class Meta:
        model = Segment
        fields = ["id", "key", "name", "description", "subject", "criteria_text", "criteria", "member_count",
                  "created_at", "updated_at"]
        read_only_fields = ["criteria", "created_at", "updated_at"]
        # Uniqueness of the key is checked by the service, inside its transaction.
        validators = []


class MemberAccountSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    name = serializers.CharField()
    plan = serializers.CharField()
    owner = serializers.EmailField(source="owner.email", default=None)


class MemberContactSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    email = serializers.CharField()
    name = serializers.CharField()
    role = serializers.CharField()


class SegmentMemberSerializer(serializers.ModelSerializer):
    account = MemberAccountSerializer()
    contact = MemberContactSerializer(allow_null=True)

    class Meta:
        model = SegmentMembership
        fields = ["account", "contact", "entered_at"]


class SegmentPreviewSerializer(serializers.Serializer):
    subject = serializers.ChoiceField(choices=Subject.choices, default=Subject.ACCOUNT)
    criteria_text = serializers.CharField()


class AlertRuleSerializer(ServiceWriteMixin, serializers.ModelSerializer):
    condition_text = serializers.CharField(help_text='When to alert, e.g. `health.delta_7d <= -15`.')
    notify_roles = serializers.ListField(child=serializers.ChoiceField(choices=Role.choices), required=False)
    notify_emails = serializers.ListField(child=serializers.EmailField(), required=False)
    channels = serializers.ListField(child=serializers.ChoiceField(choices=Channel.choices), required=False)
    # The Slack URL is a credential: whoever has it can post to the channel, so it is written, never read back.
    slack_webhook_url = serializers.URLField(max_length=500, required=False, allow_blank=True, write_only=True)
    has_slack_webhook = serializers.SerializerMethodField()
    create_service = staticmethod(services.alert_rule_create)
    update_service = staticmethod(services.alert_rule_update)
    instance_name = "rule"

    class Meta:
        model = AlertRule
        fields = ["id", "key", "name", "description", "condition_text", "condition", "severity", "notify_owner",
                  "notify_roles", "notify_emails", "channels", "slack_webhook_url", "has_slack_webhook", "cooldown_minutes",
                  "include_terminal_stages", "enabled", "created_at", "updated_at"]
        read_only_fields = ["condition", "created_at", "updated_at"]
        validators = []

    def get_has_slack_webhook(self, rule) -> bool:
        return bool(rule.slack_webhook_url)


class AlertSerializer(serializers.ModelSerializer):
    rule = serializers.SlugRelatedField(slug_field="key", read_only=True)
    account_name = serializers.CharField(source="account.name", read_only=True)
    owner = serializers.EmailField(source="account.owner.email", default=None, read_only=True)
    acknowledged_by = serializers.EmailField(source="acknowledged_by.email", default=None, read_only=True)
    resolved_by = serializers.EmailField(source="resolved_by.email", default=None, read_only=True)
    snoozed_by = serializers.EmailField(source="snoozed_by.email", default=None, read_only=True)

    class Meta:
        model = Alert
        fields = ["id", "rule", "account", "account_name", "owner", "title", "severity", "status", "opened_at",
                  "acknowledged_by", "acknowledged_at", "resolved_by", "resolved_at", "resolution", "snoozed_until",
                  "snoozed_by", "note", "details", "source"]
        read_only_fields = fields


class AlertActionSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="")


class AlertIdsSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        allow_empty=False,
        max_length=1000,
        help_text="The alerts to act on (at most 1,000), by id.",
    )


class AlertsActionSerializer(AlertActionSerializer, AlertIdsSerializer):
    pass


class AlertsSnoozeSerializer(AlertIdsSerializer):
    until = serializers.DateTimeField(
        help_text="When they come back by themselves: a moment within the next 90 days. Their status stays."
    )


class AlertsActionResultSerializer(serializers.Serializer):
    changed = serializers.ListField(child=serializers.IntegerField(), help_text="The ids of the alerts acted on.")
    unchanged = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="The ids left as they were: past that step already, or not an alert of this tenant.",
    )


class WebhookSubscriptionSerializer(serializers.ModelSerializer):
    event_types = serializers.ListField(child=serializers.ChoiceField(choices=webhooks.EVENT_TYPES), allow_empty=False)

    class Meta:
        model = WebhookSubscription
        fields = ["id", "url", "description", "event_types", "active", "consecutive_failures", "disabled_at",
                  "created_at", "updated_at"]
        read_only_fields = ["consecutive_failures", "disabled_at", "created_at", "updated_at"]

    def create(self, validated_data):
        tenant = validated_data.pop("tenant")
        try:
            subscription, secret = webhooks.webhook_subscription_create(
                tenant=tenant, actor=api_actor(self.context), **validated_data
            )
        except DjangoValidationError as exc:
            raise_as_api_error(exc)
        subscription.new_secret = secret
        return subscription

    def update(self, instance, validated_data):
        try:
            return webhooks.webhook_subscription_update(
                tenant=instance.tenant, subscription=instance, actor=api_actor(self.context), **validated_data
            )
        except DjangoValidationError as exc:
            raise_as_api_error(exc)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        # The secret is shown once: in the answer to the create that made it.
        if getattr(instance, "new_secret", None):
            data["secret"] = instance.new_secret
        return data


class WebhookSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(read_only=True)


class WebhookRetrySerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        allow_empty=False,
        max_length=1000,
        help_text="The failed deliveries to send again (at most 1,000), by id; without it, every failed one.",
    )


class WebhookRetriedSerializer(serializers.Serializer):
    retried = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="The ids of the deliveries queued again; a delivery not failed, or not this endpoint's, is left "
        "out. An endpoint that is disabled gets them once it is enabled.",
    )


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = ["id", "subscription", "event_id", "event_type", "payload", "idempotency_key", "status", "attempts",
                  "last_status_code", "last_error", "next_attempt_at", "delivered_at", "created_at"]
        read_only_fields = fields
