from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class TenancyConfig(AppConfig):
    name = "csplatform.tenancy"
    label = "tenancy"

    def ready(self):
        # Registers the API key scheme with the OpenAPI generator.
        from .api import schema  # noqa: F401

        # Registers the deploy check that row-level security binds the app's role.
        from . import checks  # noqa: F401
        from .rls import check_role, enable_row_level_security

        # PostgreSQL row-level security on every tenant table, including ones added later.
        post_migrate.connect(enable_row_level_security, sender=self, dispatch_uid="tenancy-row-level-security")
        connection_created.connect(check_role, dispatch_uid="tenancy-row-level-security-role")
