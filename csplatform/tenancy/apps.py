from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "csplatform.tenancy"
    label = "tenancy"

    def ready(self):
        # Registers the API key scheme with the OpenAPI generator.
        from .api import schema  # noqa: F401
