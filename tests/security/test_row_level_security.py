"""PostgreSQL row-level security: with the app's query filter gone, the database still keeps tenants apart.

The tests connect as the app does in production: an ordinary role, neither
superuser nor BYPASSRLS, which the superuser of the test run becomes with
SET LOCAL ROLE for the length of the test's transaction.
"""

import secrets

import pytest
from django.core import mail
from django.db import DatabaseError, connection, transaction

from alerts.models import DeliveryStatus, WebhookDelivery
from alerts.webhooks import webhook_deliver_due, webhook_emit, webhook_subscription_create
from csplatform.customers.models import Account
from csplatform.tenancy.rls import POLICY, check_role, dangerously_bypass_rls, protected_models, tenant_context
from playbooks.models import EmailStatus, OutboundEmail, Run, RunStatus
from playbooks.runner import steps_run_due
from playbooks.services import playbook_create, runs_start
from tests.alerts.conftest import Receiver
from tests.conftest import make_api_client
from tests.factories import AccountFactory, ContactFactory, TenantFactory

from .world import build_world, row_counts

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level security is PostgreSQL's")


@pytest.fixture
def world(db):
    world = build_world()
    other = TenantFactory(slug="rls-other")
    AccountFactory.create_batch(3, tenant=other)
    world["other"] = other
    return world


@pytest.fixture
def app_role(world):
    """Become an ordinary role with rights on every table, as production's app role has."""
    role = f"csp_app_{secrets.token_hex(4)}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} NOSUPERUSER NOBYPASSRLS")
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
        cursor.execute(f"SET LOCAL ROLE {role}")
    check_role()
    assert connection.csp_rls_enforced
    yield role
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")
    check_role()


def unfiltered_counts():
    """Rows per protected table, read without any tenant filter: `SELECT count(*) FROM t`."""
    counts = {}
    with connection.cursor() as cursor:
        for model in protected_models():
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(model._meta.db_table)}")
            counts[model._meta.label] = cursor.fetchone()[0]
    return counts


def protected_counts(tenant):
    protected = {model._meta.label for model in protected_models()}
    return {label: count for label, count in row_counts(tenant).items() if label in protected}


def test_every_tenant_table_has_the_policy_enabled_and_forced(world):
    tables = {model._meta.db_table for model in protected_models()}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_policies p ON p.tablename = c.relname "
            "WHERE c.relrowsecurity AND c.relforcerowsecurity AND p.policyname = %s",
            [POLICY],
        )
        covered = {name for (name,) in cursor.fetchall()}
    assert tables - covered == set()
    assert {"customers_account", "customers_usageevent", "health_healthscore"} <= tables


def test_with_a_tenant_set_an_unfiltered_select_returns_only_that_tenants_rows(world, app_role):
    with superuser():
        expected = protected_counts(world["tenant"])
        everything = unfiltered_counts()
    assert everything != expected, "the other tenant's rows must exist for this test to mean anything"

    with tenant_context(world["tenant"]):
        assert unfiltered_counts() == expected
        assert set(Account.objects.dangerously_all_tenants().values_list("tenant_id", flat=True)) == {world["tenant"].pk}


def test_with_no_tenant_set_an_unfiltered_select_returns_nothing(world, app_role):
    assert set(unfiltered_counts().values()) == {0}
    with tenant_context(world["tenant"]):
        pass
    assert set(unfiltered_counts().values()) == {0}, "the tenant must not outlive its block"


def test_the_bypass_sees_every_tenant_and_only_inside_its_block(world, app_role):
    with dangerously_bypass_rls():
        assert Account.objects.dangerously_all_tenants().count() == 4
    assert Account.objects.dangerously_all_tenants().count() == 0


def test_writes_cannot_reach_or_create_another_tenants_rows(world, app_role):
    with tenant_context(world["tenant"]):
        assert Account.objects.dangerously_all_tenants().update(plan="hacked") == 1
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE customers_account SET tenant_id = %s WHERE tenant_id = %s",
                    [world["other"].pk, world["tenant"].pk],
                )
    with superuser():
        assert Account.objects.for_tenant(world["other"]).filter(plan="hacked").count() == 0


def test_the_api_and_pages_work_as_the_app_role_and_see_only_their_tenant(world, app_role, client):
    """The request paths set the tenant themselves: under the app role they see their rows, and only those."""
    with superuser():
        api = make_api_client(world["tenant"], scopes=["read"])
        other_api = make_api_client(world["other"], scopes=["read"])
    account = world["account"]

    listed = api.get("/api/v1/accounts/")
    assert listed.status_code == 200
    assert [row["external_id"] for row in listed.json()["results"]] == [account.external_id]
    assert api.get(f"/api/v1/accounts/{account.pk}/health/").status_code == 200
    assert len(other_api.get("/api/v1/accounts/").json()["results"]) == 3

    client.force_login(world["admin"])
    page = client.get(f"/t/{world['tenant'].slug}/accounts/{account.pk}/")
    assert page.status_code == 200
    assert account.name in page.content.decode()
    assert set(unfiltered_counts().values()) == {0}, "no tenant may linger after the request"


def due_step_and_delivery(tenant, url):
    """A run whose email step is due now and a webhook delivery due now, in `tenant`."""
    account = AccountFactory(tenant=tenant)
    ContactFactory(tenant=tenant, account=account, role="administrator")
    step = {"kind": "send_email", "config": {"subject": "Hello", "text": "Hi", "quiet_hours": False}}
    playbook = playbook_create(
        tenant=tenant, actor=None, key="rls", name="RLS", trigger_type="manual", steps=[step], enabled=True
    )
    (run,) = runs_start(tenant=tenant, playbook=playbook, account_ids=[account.pk])
    webhook_subscription_create(tenant=tenant, actor=None, url=url, event_types=["playbook.step_completed"])
    (delivery_id,) = webhook_emit(
        tenant=tenant, event_type="playbook.step_completed", payload={"run": run.pk}, idempotency_key=f"rls:{run.pk}"
    )
    return run.pk, delivery_id


def test_the_runners_claim_across_tenants_and_execute_each_in_its_tenant_under_the_app_role(
    world, app_role, settings
):
    """The step runner and the webhook runner claim with the bypass and execute each row in its tenant's context."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.CSP_WEBHOOK_ALLOW_PRIVATE = True
    tenants = [world["tenant"], world["other"]]
    with Receiver() as receiver:
        with superuser():
            due = {tenant.pk: due_step_and_delivery(tenant, receiver.url) for tenant in tenants}

        steps_run_due()
        webhook_deliver_due()

    assert set(unfiltered_counts().values()) == {0}, "no tenant or bypass may linger after the runners"
    with superuser():
        for tenant in tenants:
            run_id, delivery_id = due[tenant.pk]
            assert Run.objects.for_tenant(tenant).get(pk=run_id).status == RunStatus.COMPLETED
            assert OutboundEmail.objects.for_tenant(tenant).get(step_run__run_id=run_id).status == EmailStatus.SENT
            assert WebhookDelivery.objects.for_tenant(tenant).get(pk=delivery_id).status == DeliveryStatus.DELIVERED
    assert len(mail.outbox) == 2
    assert sorted(request["json"]["tenant"] for request in receiver.requests) == sorted(t.slug for t in tenants)


class superuser:
    """Step back to the test run's own role for a moment."""

    def __enter__(self):
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            (self.role,) = cursor.fetchone()
            cursor.execute("RESET ROLE")
        check_role()

    def __exit__(self, *exc):
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL ROLE {self.role}")
        check_role()
