"""PostgreSQL row-level security: the second wall behind `for_tenant()`.

Every tenant table gets a policy that shows a row only when its tenant is
the one the connection has set:

    tenant_id = current_setting('csp.tenant_id', true)::bigint
    OR current_setting('csp.bypass_rls', true) = 'on'

`tenant_context(tenant)` sets that tenant for the block and restores the
previous value when the block ends, error or not. Inside a transaction it is
SET LOCAL, so it also ends with the transaction; in autocommit it is a session
setting, so the block's several transactions share it, and a restore that
fails closes the connection rather than leave the tenant on it for the next
request. `dangerously_bypass_rls()` is the named escape hatch for work that
spans tenants: the pipeline's sweeps, and the two lookups that find a
request's tenant before it can be set (an API key by its hash, the signed-in
user's memberships). A superuser, or a role with BYPASSRLS, ignores the
policies (and then the settings are skipped, see check_role; `check --deploy
--database default` warns); production runs the app as an ordinary role so
they apply. On SQLite all of this is a no-op.
"""

from contextlib import contextmanager

from django.apps import apps
from django.db import connection, transaction

from csplatform.sql import database_settings

POLICY = "tenant_isolation"
TENANT_SETTING = "csp.tenant_id"
BYPASS_SETTING = "csp.bypass_rls"

# NULLIF: once a transaction that set the value ends, the setting reads as ''.
CONDITION = (
    f"tenant_id = NULLIF(current_setting('{TENANT_SETTING}', true), '')::bigint "
    f"OR current_setting('{BYPASS_SETTING}', true) = 'on'"
)


def protected_models():
    from .models import TenantModel

    return [
        model
        for model in apps.get_models()
        if issubclass(model, TenantModel) and model._meta.managed
    ]


def policy_statements(table):
    quoted = connection.ops.quote_name(table)
    return [
        f"ALTER TABLE {quoted} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {quoted} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS {POLICY} ON {quoted}",
        f"CREATE POLICY {POLICY} ON {quoted} USING ({CONDITION}) WITH CHECK ({CONDITION})",
    ]


def enable_row_level_security(using="default", **kwargs):
    """Put the policy on every tenant table; safe to repeat (runs after every `migrate`).

    After `migrate` rather than in one migration, so that a tenant table any
    app adds later is covered the moment it exists.
    """
    from django.db import connections

    target = connections[using]
    if target.vendor != "postgresql":
        return
    existing = set(target.introspection.table_names())
    with transaction.atomic(using=using), target.cursor() as cursor:
        for model in protected_models():
            if model._meta.db_table in existing:
                for statement in policy_statements(model._meta.db_table):
                    cursor.execute(statement)


def check_role(sender=None, connection=connection, **kwargs):
    """Note whether the policies bind this connection's role (connection_created handler).

    A superuser or BYPASSRLS role ignores them, so setting the tenant would
    cost a query per block and change nothing; the check costs one query per
    new connection. Call it again after a SET ROLE.
    """
    connection.csp_rls_enforced = policies_bind(connection)


def policies_bind(connection):
    """Whether the policies bind the connection's current role (never on SQLite)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT NOT (rolsuper OR rolbypassrls) FROM pg_roles WHERE rolname = current_user")
        return cursor.fetchone()[0]


@contextmanager
def _settings(tenant_id, bypass):
    connection.ensure_connection()
    if not getattr(connection, "csp_rls_enforced", False):
        yield
        return
    with database_settings({TENANT_SETTING: tenant_id, BYPASS_SETTING: bypass}):
        yield


def tenant_context(tenant):
    """Limit the rows the block's queries can reach to `tenant` (a Tenant or its id)."""
    tenant_id = getattr(tenant, "pk", tenant)
    if tenant_id is None:
        raise ValueError("tenant_context() needs a tenant")
    return _settings(str(int(tenant_id)), "off")


def dangerously_bypass_rls():
    """Let the block's queries reach every tenant's rows. For cross-tenant sweeps only."""
    return _settings("", "on")
