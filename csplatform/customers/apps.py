from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "csplatform.customers"
    label = "customers"
