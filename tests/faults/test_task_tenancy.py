"""A Celery task handed the wrong tenant id touches nothing of any other tenant.

Tasks take `tenant_id` first and ids after it. Every registered project task
of that shape is called with tenant B's id (or one that does not exist) and
tenant A's ids; A's rows must come out exactly as they went in.
"""

import inspect

import pytest

from csplatform import pipeline
from csplatform.celery import app
from csplatform.customers.models import Account
from csplatform.tasks import recompute_dirty_task
from health.models import HealthScore
from tests.factories import TenantFactory
from tests.security.conftest import record_figure
from tests.security.world import build_world, tenant_models, tenant_rows

MISSING_TENANT_ID = 987654321


def tenant_tasks():
    """Registered project tasks whose first argument is the tenant id."""
    app.loader.import_default_modules()
    for name, task in sorted(app.tasks.items()):
        if name.startswith("celery."):
            continue
        params = list(inspect.signature(task.run).parameters)
        if params and params[0] == "tenant_id":
            yield name, task, params[1:]


def id_arguments(params, pk):
    return [[pk] if name.endswith("_ids") else pk for name in params]


@pytest.fixture
def world(db):
    world = build_world()
    pipeline.mark_all_dirty(tenant=world["tenant"])
    return world


def test_recompute_with_another_tenants_id_leaves_the_dirty_accounts_of_this_tenant_alone(world):
    other = TenantFactory(slug="bystander")
    HealthScore.objects.for_tenant(world["tenant"]).update(computed_score=None)
    before = tenant_rows(world["tenant"])

    for tenant_id in (other.pk, MISSING_TENANT_ID):
        recompute_dirty_task.apply(args=[tenant_id]).get()

    assert Account.objects.for_tenant(world["tenant"]).dirty().count() == 1
    assert tenant_rows(world["tenant"]) == before


def test_every_tenant_task_given_a_wrong_tenant_id_changes_nothing_of_the_right_one(world):
    tasks = list(tenant_tasks())
    assert any(name == "csplatform.recompute_dirty" for name, _, _ in tasks)
    other = TenantFactory(slug="bystander")
    pks = sorted({pk for m in tenant_models() for pk in m.objects.for_tenant(world["tenant"]).values_list("pk", flat=True)})
    before = tenant_rows(world["tenant"])
    calls = 0
    for name, task, params in tasks:
        for tenant_id in (other.pk, MISSING_TENANT_ID):
            for pk in pks if params else [None]:
                # The outcome may be an error (no such row for this tenant); what counts is that A is untouched.
                task.apply(args=[tenant_id, *id_arguments(params, pk)])
                calls += 1
    record_figure(f"tenant tasks ({len(tasks)}) called with a wrong tenant id", calls)
    assert tenant_rows(world["tenant"]) == before
