from django.apps import AppConfig


class RulesConfig(AppConfig):
    name = "csplatform.rules"
    label = "rules"

    def ready(self):
        from .fields import register_customer_fields
        from .metrics import register_criteria_fields as register_metric_fields

        register_customer_fields()
        register_metric_fields()
