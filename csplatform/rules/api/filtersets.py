import django_filters

from ..models import MetricDefinition


class MetricDefinitionFilterSet(django_filters.FilterSet):
    class Meta:
        model = MetricDefinition
        fields = ["subject", "aggregation"]
