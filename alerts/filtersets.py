import django_filters

from .models import DeliveryStatus, WebhookDelivery
from .webhooks import DELIVERY_EVENT_TYPES


class WebhookDeliveryFilterSet(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices, empty_label="Any status", label="Status")
    event_type = django_filters.ChoiceFilter(
        choices=[(name, name) for name in DELIVERY_EVENT_TYPES], empty_label="Any event", label="Event"
    )

    class Meta:
        model = WebhookDelivery
        fields = ["status", "event_type"]
