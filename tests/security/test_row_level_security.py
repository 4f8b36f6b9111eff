"""PostgreSQL row-level security: with the app's query filter gone, the database still keeps tenants apart.

The tests connect as the app does in production: an ordinary role, neither
superuser nor BYPASSRLS, which the superuser of the test run becomes with
SET LOCAL ROLE for the length of the test's transaction (SET ROLE for the
session in the autocommit tests, as production's requests run).
"""

import datetime as dt
import os
import secrets
import shutil
import subprocess
from contextlib import closing

import psycopg2
import pytest
from django.conf import settings
from django.core import mail
from django.core.checks import Tags, run_checks
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from alerts.models import Alert, DeliveryStatus, Notification, WebhookDelivery
from alerts.webhooks import webhook_deliver_due, webhook_emit, webhook_subscription_create
from csplatform import pipeline
from csplatform.customers.models import Account, UsageEvent
from csplatform.digests import digests_send_due
from csplatform.models import PipelinePass
from csplatform.sql import analyze_where_tenant_unseen
from csplatform.tenancy.models import Role
from csplatform.tenancy.rls import (
    BYPASS_SETTING,
    POLICY,
    TENANT_SETTING,
    check_role,
    dangerously_bypass_rls,
    policy_statements,
    protected_models,
    tenant_context,
)
from playbooks.models import EmailStatus, OutboundEmail, Run, RunStatus, StepRun
from playbooks.nps import nps_token
from playbooks.runner import steps_run_due
from playbooks.services import playbook_create, runs_start
from tests.alerts.conftest import Receiver
from tests.conftest import make_api_client
from tests.factories import AccountFactory, ContactFactory, MembershipFactory, TenantFactory, UserFactory
from tests.test_sql import tenants_in_statistics

from .world import MARKER, build_world, row_counts

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level security is PostgreSQL's")


@pytest.fixture
def world(db):
    world = build_world()
    other = TenantFactory(slug="rls-other")
    AccountFactory.create_batch(3, tenant=other)
    world["other"] = other
    return world


def become_app_role(set_role):
    """Become an ordinary role with rights on every table, as production's app role has."""
    role = f"csp_app_{secrets.token_hex(4)}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} NOSUPERUSER NOBYPASSRLS")
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
        cursor.execute(f"{set_role} {role}")
    check_role()
    assert connection.csp_rls_enforced
    return role


@pytest.fixture
def app_role(world):
    """The app role for the test's transaction."""
    yield become_app_role("SET LOCAL ROLE")
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")
    check_role()


@pytest.fixture
def autocommit_world(transactional_db):
    """A tenant with one account and an API key, beside another tenant's two accounts, committed."""
    tenant = TenantFactory()
    AccountFactory(tenant=tenant)
    AccountFactory.create_batch(2, tenant=TenantFactory())
    return {"tenant": tenant, "api": make_api_client(tenant, scopes=["read"])}


@pytest.fixture
def app_role_in_autocommit(autocommit_world):
    """The app role for the connection's session, outside any transaction, as production's requests and tasks run."""
    role = become_app_role("SET ROLE")
    yield role
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")
        cursor.execute(f"DROP OWNED BY {role}")
        cursor.execute(f"DROP ROLE {role}")
    check_role()


def connection_settings():
    """The tenant and bypass settings as the connection holds them now ('' when unset)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s, true), current_setting(%s, true)", [TENANT_SETTING, BYPASS_SETTING])
        return tuple(value or "" for value in cursor.fetchone())


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


@pytest.mark.parametrize("table", ["tenancy_apikey", "tenancy_membership"])
def test_the_tables_that_name_a_requests_tenant_show_another_tenant_none_of_their_rows(world, app_role, table):
    """API keys and memberships are found through the named bypass; every other read of them has the wall."""

    def tenants_seen():
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT DISTINCT tenant_id FROM {table}")
            return {tenant_id for (tenant_id,) in cursor.fetchall()}

    with tenant_context(world["tenant"]):
        assert tenants_seen() == {world["tenant"].pk}
    with tenant_context(world["other"]):
        assert tenants_seen() == set()


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


def test_the_portfolio_file_read_after_its_view_returns_sets_its_tenant_as_the_app_role(world, app_role, client):
    """A streamed file's rows are read once the view has left its tenant, so the stream sets the tenant itself."""
    client.force_login(world["admin"])
    response = client.get(f"/t/{world['tenant'].slug}/accounts.csv")
    body = b"".join(response.streaming_content).decode("utf-8-sig")

    assert response.status_code == 200
    assert [line.split(",")[0] for line in body.splitlines()[1:]] == [world["account"].name]
    assert set(unfiltered_counts().values()) == {0}, "no tenant may linger after the file"


def test_the_pages_filtered_by_a_segment_and_the_account_page_read_its_members_as_the_app_role(
    world, app_role, client
):
    client.force_login(world["admin"])
    slug, segment, account = world["tenant"].slug, world["segment"], world["account"]

    listed = client.get(f"/t/{slug}/?segment={segment.key}").content.decode()
    inbox = client.get(f"/t/{slug}/alerts/?owner=all&segment={segment.key}").content.decode()
    account_page = client.get(f"/t/{slug}/accounts/{account.pk}/").content.decode()

    assert account.name in listed and "1 account" in listed
    assert f"{MARKER.title()} alert" in inbox
    assert f'?segment={segment.key}">{segment.name}</a>' in account_page
    assert set(unfiltered_counts().values()) == {0}, "no tenant may linger after the request"


def test_the_account_activity_reads_every_source_of_its_tenant_as_the_app_role(world, app_role, client):
    client.force_login(world["admin"])
    slug, account = world["tenant"].slug, world["account"]

    html = client.get(f"/t/{slug}/accounts/{account.pk}/activity/").content.decode()

    for seen in ("Placed in", "Alert opened:", "Playbook started:", "the segment", "Note"):
        assert seen in html, seen
    assert set(unfiltered_counts().values()) == {0}, "no tenant may linger after the request"


def test_the_freshness_status_counts_only_its_tenants_marks_as_the_app_role(world, app_role, client):
    with superuser():
        api = make_api_client(world["tenant"], scopes=["read"])
        other_api = make_api_client(world["other"], scopes=["read"])
        for tenant in (world["tenant"], world["other"]):
            pipeline.mark_all_dirty(tenant=tenant)
        waiting = Account.objects.for_tenant(world["tenant"]).count()

    assert api.get("/api/v1/pipeline/").json()["waiting_accounts"] == waiting
    assert other_api.get("/api/v1/pipeline/").json()["waiting_accounts"] == 3
    client.force_login(world["admin"])
    page = client.get(f"/t/{world['tenant'].slug}/settings/pipeline/").content.decode()
    assert f"{waiting} account{'s' if waiting > 1 else ''} waiting" in page
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


def test_the_digest_sweep_reads_members_across_tenants_and_writes_each_digest_in_its_tenant_under_the_app_role(
    world, app_role
):
    tenants = [world["tenant"], world["other"]]
    with superuser():
        csms = {}
        for tenant in tenants:
            csms[tenant.pk] = UserFactory()
            MembershipFactory(tenant=tenant, user=csms[tenant.pk], role=Role.CSM, timezone="UTC")
            account = AccountFactory(tenant=tenant, owner=csms[tenant.pk])
            Alert.objects.create(
                tenant=tenant, account=account, title=f"Alert of {tenant.slug}", opened_at=timezone.now()
            )

    digests_send_due(now=dt.datetime(2027, 1, 4, 9, 10, tzinfo=dt.timezone.utc))

    assert set(unfiltered_counts().values()) == {0}, "no tenant or bypass may linger after the sweep"
    with superuser():
        for tenant in tenants:
            digest = Notification.objects.for_tenant(tenant).get(user=csms[tenant.pk])
            assert f"Alert of {tenant.slug}" in digest.text


def test_a_pass_and_its_helper_recompute_only_their_tenants_accounts_under_the_app_role(world, app_role):
    tenant, other = world["tenant"], world["other"]
    with superuser():
        AccountFactory.create_batch(3, tenant=tenant)
        for each in (tenant, other):
            pipeline.mark_all_dirty(tenant=each)
        accounts = Account.objects.for_tenant(tenant).count()

    def helper_drains_the_pass(pass_id):
        helped.append(pipeline.pass_help(tenant=tenant, pass_id=pass_id))

    helped = []
    with tenant_context(tenant):
        totals = pipeline.recompute_dirty(
            tenant=tenant, chunk_size=1, threads=1, ask_for_helpers=helper_drains_the_pass
        )

    assert totals["accounts"] == accounts and helped == [accounts]
    with superuser():
        assert not Account.objects.for_tenant(tenant).dirty().exists()
        assert Account.objects.for_tenant(other).dirty().count() == 3
        assert list(PipelinePass.objects.dangerously_all_tenants().values_list("tenant_id", "accounts")) == [
            (tenant.pk, accounts)
        ]


def test_a_one_click_nps_answer_is_recorded_under_the_app_role(world, app_role, client):
    """The public answer page has no session: the token's tenant is the one whose rows it reads and writes."""
    tenant, contact = world["tenant"], world["contact"]
    with superuser():
        step_run = StepRun.objects.for_tenant(tenant).first()
    token = nps_token(tenant=tenant, contact=contact, score=9, step_run=step_run, expires_days=14)

    assert client.get(f"/nps/{token}/").status_code == 200

    assert set(unfiltered_counts().values()) == {0}, "no tenant may linger after the answer"
    with superuser():
        answers = UsageEvent.objects.for_tenant(tenant).filter(contact=contact, event="nps.answered")
        assert [event.properties for event in answers] == [{"score": 9}]


def test_in_autocommit_the_tenant_holds_across_commits_and_is_reset_when_its_block_fails(
    autocommit_world, app_role_in_autocommit
):
    tenant = autocommit_world["tenant"]

    with pytest.raises(DatabaseError), tenant_context(tenant):
        with transaction.atomic():
            Account.objects.for_tenant(tenant).update(plan="team")
        assert Account.objects.dangerously_all_tenants().get().plan == "team", "the commit kept the tenant"
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 / 0")

    assert connection_settings() == ("", "")
    assert not Account.objects.dangerously_all_tenants().exists()


def test_an_api_request_in_autocommit_leaves_no_tenant_on_the_persistent_connection(
    autocommit_world, app_role_in_autocommit
):
    listed = autocommit_world["api"].get("/api/v1/accounts/")

    assert len(listed.json()["results"]) == 1
    assert connection.csp_rls_enforced, "the request must have run on this connection, as the app role"
    assert connection_settings() == ("", "")


def deploy_warnings():
    messages = run_checks(tags=[Tags.database], include_deployment_checks=True, databases=["default"])
    return {message.id for message in messages}


def test_check_deploy_warns_that_row_level_security_is_inactive_for_a_superuser(db):
    """The test run connects as a superuser, as compose's POSTGRES_USER is one."""
    assert "tenancy.W001" in deploy_warnings()


def test_check_deploy_is_quiet_about_row_level_security_under_the_app_role(world, app_role):
    assert "tenancy.W001" not in deploy_warnings()


@pytest.fixture
def unseen_tenant(world):
    """A tenant whose accounts arrived after the accounts table was analysed."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE customers_account")
    tenant = TenantFactory()
    AccountFactory.create_batch(3, tenant=tenant)
    return tenant


def test_the_app_role_has_a_table_whose_statistics_predate_the_tenant_analysed(unseen_tenant, app_role):
    """Row-level security hides `pg_stats` from the app's role, which owns no table either."""
    with tenant_context(unseen_tenant):
        assert analyze_where_tenant_unseen(unseen_tenant.pk, [Account]) == ["customers_account"]

    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")
    assert unseen_tenant.pk in tenants_in_statistics(Account)


@pytest.fixture
def empty_database():
    """A new database and a free role name, as the postgres image's first start finds them; both dropped after."""
    database, app_user = f"csp_init_{secrets.token_hex(4)}", f"csp_app_{secrets.token_hex(4)}"
    with closing(server_connection("postgres")) as server:
        server.autocommit = True
        with server.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {database}")
        try:
            yield database, app_user
        finally:
            with server.cursor() as cursor:
                # The role's grants live in the database, so it goes first.
                cursor.execute(f"DROP DATABASE {database} WITH (FORCE)")
                cursor.execute(f"DROP ROLE IF EXISTS {app_user}")


def server_connection(database, user=None, password=None):
    """A connection of its own to the test run's server, outside Django's transaction."""
    server = connection.settings_dict
    return psycopg2.connect(
        host=server["HOST"] or None,
        port=server["PORT"] or None,
        dbname=database,
        user=user or server["USER"],
        password=password or server["PASSWORD"] or None,
    )


@pytest.mark.skipif(shutil.which("psql") is None, reason="the init script runs psql")
def test_the_compose_init_script_creates_an_app_role_that_the_policies_bind(empty_database):
    """Run the script as the postgres image does, then use its role on a tenant table that migrate creates later."""
    database, app_user = empty_database
    server, password = connection.settings_dict, secrets.token_urlsafe(16)
    subprocess.run(
        ["sh", str(settings.BASE_DIR / "deploy" / "postgres" / "create-app-role.sh")],
        env={
            **os.environ,
            "PGHOST": server["HOST"],
            "PGPORT": str(server["PORT"] or 5432),
            "PGPASSWORD": server["PASSWORD"] or "",
            "POSTGRES_USER": server["USER"],
            "POSTGRES_DB": database,
            "POSTGRES_APP_USER": app_user,
            "POSTGRES_APP_PASSWORD": password,
        },
        check=True,
        capture_output=True,
    )
    with closing(server_connection(database)) as owner, owner, owner.cursor() as cursor:
        cursor.execute("CREATE TABLE notes (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, tenant_id bigint)")
        for statement in policy_statements("notes"):
            cursor.execute(statement)
        cursor.execute("INSERT INTO notes (tenant_id) VALUES (1), (2)")
        cursor.execute("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = %s", [app_user])
        assert cursor.fetchone() == (False, False, True)

    with closing(server_connection(database, app_user, password)) as app, app.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM notes")
        assert cursor.fetchone() == (0,), "no tenant set, no rows"
        cursor.execute("SELECT set_config(%s, '1', true)", [TENANT_SETTING])
        cursor.execute("INSERT INTO notes (tenant_id) VALUES (1)")
        cursor.execute("SELECT tenant_id FROM notes")
        assert cursor.fetchall() == [(1,), (1,)]
        with pytest.raises(psycopg2.Error, match="row-level security"):
            cursor.execute("INSERT INTO notes (tenant_id) VALUES (2)")


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
