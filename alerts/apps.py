from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"

    def ready(self):
        from .criteria_fields import register_criteria_fields

        register_criteria_fields()
