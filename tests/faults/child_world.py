"""Tenants for the fault tests that run the app in child processes, built in a child process too.

    python -m tests.faults.child_world ingest SLUG ACCOUNT...      prints an ingest API key
    python -m tests.faults.child_world pipeline SLUG ACCOUNTS      dirty accounts that all move a stage

The test process keeps its own test database; these run with the database
the child app servers and workers use (DATABASE_URL, CSP_VAR_DIR), and under
row-level security on PostgreSQL, so each writes inside its tenant's context.
"""

import os
import sys

import django


def ingest_tenant(slug, external_ids):
    from csplatform.customers.services import account_bulk_upsert
    from csplatform.tenancy.rls import tenant_context
    from csplatform.tenancy.services import api_key_create, tenant_create

    tenant = tenant_create(slug=slug, name=slug)
    with tenant_context(tenant):
        account_bulk_upsert(tenant=tenant, items=[{"external_id": external_id} for external_id in external_ids])
        _, raw_key = api_key_create(tenant=tenant, name="fault test", scopes=["ingest"])
    print(raw_key)


def pipeline_tenant(slug, accounts):
    """Every account is new (an initial placement) and meets the second stage's criteria (a move)."""
    from csplatform.customers.services import account_bulk_upsert
    from csplatform.tenancy.rls import tenant_context
    from csplatform.tenancy.services import tenant_create
    from lifecycle.services import stage_create

    tenant = tenant_create(slug=slug, name=slug)
    with tenant_context(tenant):
        stage_create(tenant=tenant, actor=None, key="onboarding", name="Onboarding")
        stage_create(tenant=tenant, actor=None, key="paying", name="Paying", entry_criteria_text="account.mrr > 0")
        items = [{"external_id": f"acct-{n}", "mrr": 100} for n in range(accounts)]
        account_bulk_upsert(tenant=tenant, items=items)


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings")
    django.setup()
    command, slug, *rest = sys.argv[1:]
    if command == "ingest":
        ingest_tenant(slug, rest)
    else:
        pipeline_tenant(slug, int(rest[0]))
