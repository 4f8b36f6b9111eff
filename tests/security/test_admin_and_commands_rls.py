"""The Django admin and the tenant management commands under row-level security, as production's app role.

A session without a tenant sees no tenant rows, so the admin (superusers,
across tenants) and the commands (one tenant, or the demo's two) must each
name the rows they work on: the bypass for the admin and seed_demo, the
tenant's context for the rest.
"""

import io

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection

from csplatform.customers.models import Account
from csplatform.tenancy.models import ApiKey, Tenant
from csplatform.tenancy.rls import tenant_context
from health.models import HealthSnapshot
from lifecycle.services import stage_create
from tests.factories import UserFactory

from .test_row_level_security import app_role, world  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level security is PostgreSQL's")


@pytest.fixture
def other_stage(world):
    return stage_create(tenant=world["other"], actor=None, key="other_trial", name="Other Tenant Trial")


@pytest.fixture
def superuser(db):
    return UserFactory(email="root@platform.example", is_staff=True, is_superuser=True)


@pytest.fixture
def staff(db):
    user = UserFactory(email="staff@platform.example", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_stage"))
    return user


def stage_names_listed(client, user):
    client.force_login(user)
    response = client.get("/admin/lifecycle/stage/")
    assert response.status_code == 200
    page = response.content.decode()
    return {name for name in ("Other Tenant Trial", "Paying") if name in page}


def test_a_superuser_sees_every_tenants_rows_in_the_admin(world, other_stage, superuser, app_role, client):
    assert stage_names_listed(client, superuser) == {"Other Tenant Trial", "Paying"}


def test_staff_who_are_not_superusers_get_no_bypass_and_see_no_tenant_rows(world, other_stage, staff, app_role, client):
    assert stage_names_listed(client, staff) == set()


def test_the_tenant_commands_run_as_the_app_role(world, app_role):
    slug = world["tenant"].slug
    out = io.StringIO()

    call_command("create_api_key", slug, name="from the shell", scopes="read", stdout=out, stderr=io.StringIO())
    call_command("health_backfill", slug, days=2, stdout=out)
    call_command("recompute", slug, all=True, stdout=out)
    call_command("pipeline_status", slug, stdout=out)

    with tenant_context(world["tenant"]):
        assert ApiKey.objects.filter(tenant=world["tenant"], name="from the shell").exists()
        assert HealthSnapshot.objects.for_tenant(world["tenant"]).exists()
    assert "Recomputed 1 accounts" in out.getvalue()
    assert out.getvalue().endswith(", 1 accounts, complete\n")


def test_seed_demo_writes_both_demo_tenants_as_the_app_role(app_role):
    call_command("seed_demo", accounts=4, stdout=io.StringIO())

    demo = Tenant.objects.get(slug="demo")
    with tenant_context(demo):
        assert Account.objects.for_tenant(demo).count() == 4
