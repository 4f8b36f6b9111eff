import django_filters
from django.utils import timezone

from csplatform.tenancy.api.filters import BooleanFilter, DateTimeFilter, EmailFilter, IdFilter

from ..models import Alert, AlertStatus, SegmentMembership, Severity


# The API's orderings of alerts, named as `ordering` names them elsewhere.
ORDERINGS = {
    "-opened_at": lambda alerts: alerts.order_by("-opened_at", "-id"),
    "opened_at": lambda alerts: alerts.order_by("opened_at", "id"),
    "-severity": lambda alerts: alerts.most_severe_first("-opened_at", "-id"),
}


class AlertFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=AlertStatus.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    owner = EmailFilter(field_name="account__owner__email", help_text="Owner email.")
    rule = django_filters.CharFilter(field_name="rule__key", help_text="Alert rule key.")
    account = IdFilter(field_name="account_id")
    opened_since = DateTimeFilter(field_name="opened_at", lookup_expr="gte")
    snoozed = BooleanFilter(
        method="filter_snoozed", help_text="true: snoozed now; false: not snoozed now (never, or no longer)."
    )
    ordering = django_filters.ChoiceFilter(
        choices=[(value, value) for value in ORDERINGS], method="filter_ordering",
        help_text="-opened_at (the default): newest opened first; opened_at: oldest opened first; -severity: the most "
        "severe first, each severity newest opened first.",
    )

    class Meta:
        model = Alert
        fields = ["status", "severity", "owner", "rule", "account", "opened_since", "snoozed", "ordering"]

    def filter_snoozed(self, queryset, name, value):
        now = timezone.now()
        return queryset.snoozed(now) if value else queryset.awake(now)

    def filter_ordering(self, queryset, name, value):
        return ORDERINGS[value](queryset)


class SegmentMemberFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(field_name="account__name", lookup_expr="icontains", help_text="Account name contains.")
    owner = EmailFilter(field_name="account__owner__email", help_text="Owner email.")
    plan = django_filters.CharFilter(field_name="account__plan")
    role = django_filters.CharFilter(field_name="contact__role", help_text="Contact role (contact segments).")
    entered_since = DateTimeFilter(field_name="entered_at", lookup_expr="gte")

    class Meta:
        model = SegmentMembership
        fields = ["q", "owner", "plan", "role", "entered_since"]
