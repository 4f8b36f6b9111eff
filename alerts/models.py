import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from csplatform.customers.models import Account, Contact
from csplatform.tenancy.models import TenantModel, TenantQuerySet, User

# Keys are written in criteria (`segments contains "at_risk"`) and in playbook triggers.
validate_key = RegexValidator(
    r"^[a-z][a-z0-9_]{0,49}$",
    "Use a lowercase letter followed by lowercase letters, digits or underscores (at most 50 characters).",
    code="invalid_key",
)


class Subject(models.TextChoices):
    ACCOUNT = "account", "Accounts"
    CONTACT = "contact", "Contacts"


class Segment(TenantModel):
    """Saved criteria over accounts or contacts; who is in it is kept in SegmentMembership."""

    key = models.CharField(max_length=50, validators=[validate_key])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    subject = models.CharField(max_length=10, choices=Subject.choices, default=Subject.ACCOUNT)
    criteria = models.JSONField()
    criteria_text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="segment_unique_key")]

    def __str__(self):
        return self.name


class SegmentMembershipQuerySet(TenantQuerySet):
    def current(self):
        return self.filter(left_at__isnull=True)


class SegmentMembership(TenantModel):
    """One stay of an account (or one of its contacts) in a segment; current members have no `left_at`."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="segment_memberships")
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="segment_memberships"
    )
    entered_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)

    objects = SegmentMembershipQuerySet.as_manager()

    class Meta:
        ordering = ["-entered_at", "-id"]
        constraints = [
            # At most one current stay per account (account segments) or per contact (contact segments).
            models.UniqueConstraint(
                fields=["tenant", "segment", "account"],
                condition=models.Q(left_at__isnull=True, contact__isnull=True),
                name="segment_one_current_account",
            ),
            models.UniqueConstraint(
                fields=["tenant", "segment", "contact"],
                condition=models.Q(left_at__isnull=True, contact__isnull=False),
                name="segment_one_current_contact",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "segment", "left_at"]),
            models.Index(fields=["tenant", "account", "left_at"]),
        ]

    def __str__(self):
        return f"account {self.account_id} in segment {self.segment_id}"


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class Channel(models.TextChoices):
    IN_APP = "in_app", "In the app"
    EMAIL = "email", "Email"
    SLACK = "slack", "Slack"


def default_channels():
    return [Channel.IN_APP.value]


class AlertRule(TenantModel):
    """A condition over accounts that opens an alert while it holds and resolves it when it clears."""

    key = models.CharField(max_length=50, validators=[validate_key])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    condition = models.JSONField()
    condition_text = models.TextField()
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    notify_owner = models.BooleanField(default=True, help_text="Notify the account's owner (its CSM).")
    notify_roles = models.JSONField(default=list, blank=True, help_text="Notify every member with these roles.")
    notify_emails = models.JSONField(default=list, blank=True, help_text="Also email these addresses.")
    channels = models.JSONField(default=default_channels, blank=True)
    slack_webhook_url = models.URLField(max_length=500, blank=True)
    cooldown_minutes = models.PositiveIntegerField(
        default=0, help_text="After a resolve, do not open again for the same account within this time."
    )
    # A customer in a terminal stage (Churned) has left: rules leave it alone unless they are about such customers.
    include_terminal_stages = models.BooleanField(
        default=False, help_text="Also watch accounts in a terminal stage, such as Churned."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="alert_rule_unique_key")]

    def __str__(self):
        return self.name


class AlertStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class Resolution(models.TextChoices):
    AUTO = "auto", "Condition cleared"
    MANUAL = "manual", "Resolved by hand"


ACTIVE_STATUSES = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)


def snoozed_at(now):
    """Active alerts put out of sight until a later moment than `now`; each comes back by itself when it passes."""
    return models.Q(status__in=ACTIVE_STATUSES, snoozed_until__gt=now)


class AlertQuerySet(TenantQuerySet):
    def active(self):
        return self.filter(status__in=ACTIVE_STATUSES)

    def snoozed(self, now):
        return self.filter(snoozed_at(now))

    def awake(self, now):
        """Alerts not snoozed at `now`: never, no longer, or resolved since."""
        return self.exclude(snoozed_at(now))

    def most_severe_first(self, *then):
        """Critical, then warning, then info alerts, each severity in the order `then`."""
        rank = models.Case(
            *(models.When(severity=value, then=rank) for rank, value in enumerate(Severity.values)),
            output_field=models.IntegerField(),
        )
        return self.alias(severity_rank=rank).order_by("-severity_rank", *then)


class Alert(TenantModel):
    """Something about an account a CSM should look at: open -> acknowledged -> resolved."""

    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="alerts")
    title = models.CharField(max_length=300)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    status = models.CharField(max_length=15, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    opened_at = models.DateTimeField()
    acknowledged_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=10, choices=Resolution.choices, blank=True)
    # Out of the inbox's open and acknowledged lists, the nav count and the digest until then.
    snoozed_until = models.DateTimeField(null=True, blank=True)
    snoozed_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    note = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    source = models.CharField(max_length=200, blank=True)
    # Makes alert_raise idempotent for callers that may run twice (playbook steps).
    dedupe_key = models.CharField(max_length=200, blank=True)

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "rule", "account"],
                condition=models.Q(status__in=["open", "acknowledged"]),
                name="alert_one_active_per_rule_account",
            ),
            models.UniqueConstraint(
                fields=["tenant", "dedupe_key"], condition=~models.Q(dedupe_key=""), name="alert_unique_dedupe_key"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "status", "-opened_at"]),
            models.Index(fields=["tenant", "account", "-opened_at"]),
            models.Index(fields=["tenant", "rule", "resolved_at"]),
        ]

    def __str__(self):
        return self.title

    @property
    def snoozed_now(self):
        return self.status in ACTIVE_STATUSES and self.snoozed_until is not None and self.snoozed_until > timezone.now()


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class Notification(TenantModel):
    """One message to one recipient on one channel: the outbox of alerts and operator notices.

    In-app notifications are delivered when written (the member's
    notifications page): an alert's, or a task a teammate gave them;
    email and Slack ones are sent by a worker after commit, claimed with
    SKIP LOCKED and retried with backoff. The idempotency key (alert,
    channel, recipient) makes a second evaluation write nothing new.
    """

    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    # What a notification without an alert is about (a task given to the member), when it is about an account.
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    recipient = models.CharField(max_length=500)
    subject = models.CharField(max_length=300)
    text = models.TextField()
    idempotency_key = models.CharField(max_length=300)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "idempotency_key"], name="notification_unique_idempotency_key")
        ]
        indexes = [
            models.Index(fields=["tenant", "user", "-created_at"]),
            # The sender's sweep spans tenants, so this index leads with its own key.
            models.Index(fields=["next_attempt_at"], condition=models.Q(status="pending"), name="notification_due"),
        ]

    def __str__(self):
        return f"{self.channel} to {self.recipient}"


class WebhookSubscription(TenantModel):
    """An endpoint of the tenant's that receives signed events of the types it chose."""

    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list)
    # Kept as given: every delivery is signed with it. The API shows it only at creation and rotation.
    secret = models.CharField(max_length=100)
    active = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["tenant", "active"])]

    def __str__(self):
        return self.url


class WebhookDelivery(TenantModel):
    """One event for one subscription, with its attempts so far and when the next one is due."""

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.UUIDField(default=uuid.uuid4)
    event_type = models.CharField(max_length=100)
    payload = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    idempotency_key = models.CharField(max_length=300)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "subscription", "idempotency_key"], name="webhook_delivery_unique_idempotency_key"
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "subscription", "-created_at"]),
            # The delivery sweep spans tenants, so this index leads with its own key.
            models.Index(fields=["next_attempt_at"], condition=models.Q(status="pending"), name="webhook_delivery_due"),
        ]

    def __str__(self):
        return f"{self.event_type} {self.event_id} to subscription {self.subscription_id}"
