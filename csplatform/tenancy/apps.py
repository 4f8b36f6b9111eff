from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "csplatform.tenancy"
    label = "tenancy"
