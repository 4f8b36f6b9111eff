from django.apps import AppConfig


class RulesConfig(AppConfig):
    name = "csplatform.rules"
    label = "rules"

    def ready(self):
        from csplatform.customers.ingest import register_value_properties

        from .fields import register_customer_fields
        from .metrics import distinct_value_properties
        from .metrics import register_criteria_fields as register_metric_fields

        register_customer_fields()
        register_metric_fields()
        register_value_properties(distinct_value_properties)
