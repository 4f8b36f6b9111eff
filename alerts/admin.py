from django.contrib import admin

from .models import Alert, AlertRule, Notification, Segment, SegmentMembership, WebhookDelivery, WebhookSubscription


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "subject", "tenant"]
    list_filter = ["subject"]
    search_fields = ["key", "name"]


@admin.register(SegmentMembership)
class SegmentMembershipAdmin(admin.ModelAdmin):
    list_display = ["segment", "account", "contact", "entered_at", "left_at"]
    raw_id_fields = ["segment", "account", "contact"]


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "severity", "enabled", "tenant"]
    list_filter = ["severity", "enabled"]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["title", "severity", "status", "opened_at", "tenant"]
    list_filter = ["status", "severity"]
    raw_id_fields = ["account", "rule"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["channel", "recipient", "status", "attempts", "created_at"]
    list_filter = ["channel", "status"]
    raw_id_fields = ["alert", "user"]


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["url", "active", "consecutive_failures", "tenant"]
    exclude = ["secret"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["event_type", "event_id", "status", "attempts", "last_status_code", "created_at"]
    list_filter = ["status", "event_type"]
    raw_id_fields = ["subscription"]
