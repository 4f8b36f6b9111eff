import django_filters

from csplatform.tenancy.api.filters import BooleanFilter, DateTimeFilter, EmailFilter, IdFilter

from ..models import ExpansionOpportunity, OutboundEmail, Run, Task


class RunFilterSet(django_filters.FilterSet):
    account = IdFilter(field_name="account_id")
    playbook = django_filters.CharFilter(field_name="playbook__key")
    status = django_filters.CharFilter(field_name="status")

    class Meta:
        model = Run
        fields = ["account", "playbook", "status"]


class TaskFilterSet(django_filters.FilterSet):
    owner = EmailFilter(field_name="owner__email")
    account = IdFilter(field_name="account_id")
    due_before = DateTimeFilter(field_name="due_at", lookup_expr="lte")
    open = BooleanFilter(field_name="completed_at", lookup_expr="isnull")

    class Meta:
        model = Task
        fields = ["owner", "account", "due_before", "open"]


class OutboundEmailFilterSet(django_filters.FilterSet):
    owner = EmailFilter(field_name="owner__email")
    account = IdFilter(field_name="account_id")
    status = django_filters.CharFilter(field_name="status")

    class Meta:
        model = OutboundEmail
        fields = ["owner", "account", "status"]


class ExpansionOpportunityFilterSet(django_filters.FilterSet):
    account = IdFilter(field_name="account_id")
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = ExpansionOpportunity
        fields = ["account", "created_after", "created_before"]
