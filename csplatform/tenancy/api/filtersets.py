import django_filters

from ..models import AuditLogEntry
from .filters import DateTimeFilter, EmailFilter


class AuditLogFilterSet(django_filters.FilterSet):
    action = django_filters.CharFilter(help_text="Only this action, such as `stage.updated`.")
    object_type = django_filters.CharFilter(help_text="Only changes of this kind of object, such as `lifecycle.stage`.")
    by_email = EmailFilter(field_name="actor__email", help_text="Only the changes this person made, by email.")
    since = DateTimeFilter(field_name="created_at", lookup_expr="gte", help_text="Made at or after this ISO 8601 time.")
    until = DateTimeFilter(field_name="created_at", lookup_expr="lt", help_text="Made before this ISO 8601 time.")

    class Meta:
        model = AuditLogEntry
        fields = []

    def filter_queryset(self, queryset):
        # Each entry names its author by email.
        return super().filter_queryset(queryset).select_related("actor")
