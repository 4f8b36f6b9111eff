from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "health"

    def ready(self):
        from .criteria_fields import register_criteria_fields

        register_criteria_fields()
