from django.core.checks import Tags, Warning, register
from django.db import connections

from .rls import policies_bind


@register(Tags.database, Tags.security, deploy=True)
def check_row_level_security_binds_the_app_role(app_configs=None, databases=None, **kwargs):
    """Warn when row-level security is inactive because the app connects as a superuser or BYPASSRLS role.

    check_role turns the settings off for such a role without a word, so this
    is where an operator learns that only `for_tenant()` keeps tenants apart.
    Like Django's own database checks it runs when a database is named:
    `manage.py check --deploy --database default`.
    """
    return [
        Warning(
            f"The {alias!r} database role is a superuser or has BYPASSRLS, so row-level security is inactive.",
            hint="Connect as an ordinary role that does not own the tables; see 'Row-level security' in the README.",
            id="tenancy.W001",
        )
        for alias in databases or ()
        if connections[alias].vendor == "postgresql" and not policies_bind(connections[alias])
    ]
