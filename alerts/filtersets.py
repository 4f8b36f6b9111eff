import django_filters

from .models import DeliveryStatus, WebhookDelivery
from .webhooks import EVENT_TYPES, TEST_EVENT_TYPE


class WebhookDeliveryFilterSet(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices, empty_label="Any status", label="Status")
    event_type = django_filters.ChoiceFilter(
        choices=[(name, name) for name in [*EVENT_TYPES, TEST_EVENT_TYPE]], empty_label="Any event", label="Event"
    )

    class Meta:
        model = WebhookDelivery
        fields = ["status", "event_type"]
