from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    name = "lifecycle"

    def ready(self):
        from .criteria_fields import register_criteria_fields

        register_criteria_fields()
