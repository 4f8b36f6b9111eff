import django_filters

from csplatform.tenancy.api.filters import DateTimeFilter, IdFilter

from ..models import StageTransition


class StageTransitionFilterSet(django_filters.FilterSet):
    account = IdFilter(field_name="account_id")
    stage = django_filters.CharFilter(field_name="to_key", help_text="Transitions into this stage (key).")
    kind = django_filters.CharFilter(field_name="kind")
    since = DateTimeFilter(field_name="at", lookup_expr="gte")

    class Meta:
        model = StageTransition
        fields = ["account", "stage", "kind", "since"]
