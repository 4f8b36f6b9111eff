"""A tenant can take all of its data away, and have all of it deleted, without touching anyone else's."""

import io
import json
import re

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from alerts.models import Alert, Channel, Notification, WebhookSubscription
from alerts.services import alert_rule_create
from csplatform.tenancy.export import SECRET_FIELDS, exported_fields, tenant_delete
from csplatform.tenancy.models import ApiKey, Role, Tenant, User
from tests.conftest import make_api_client
from tests.factories import AccountFactory, ContactFactory, MembershipFactory, TenantFactory, UsageEventFactory, UserFactory

from .conftest import record_figure
from .world import MARKER, build_world, row_counts, tenant_models


@pytest.fixture
def world(db):
    world = build_world()
    other = TenantFactory(slug="keeper")
    account = AccountFactory(tenant=other, external_id="kept")
    ContactFactory(account=account)
    UsageEventFactory(account=account)
    world["other"] = other
    return world


def exported(lines):
    return [json.loads(line) for line in lines if line.strip()]


def test_the_export_api_streams_every_row_of_the_tenant_and_nothing_else(world):
    client = make_api_client(world["tenant"], scopes=["read"])
    response = client.get("/api/v1/export")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    records = exported(b"".join(response.streaming_content).decode().splitlines())
    per_model = {}
    for record in records:
        per_model[record["model"]] = per_model.get(record["model"], 0) + 1
    expected = {label: count for label, count in row_counts(world["tenant"]).items() if count}
    assert {label: per_model.get(label, 0) for label in expected} == expected
    assert per_model["tenancy.Tenant"] == 1
    assert per_model["tenancy.User"] == 1
    body = json.dumps(records)
    assert "kept" not in body and world["other"].slug not in body
    assert all(record["fields"].get("tenant_id", world["tenant"].pk) == world["tenant"].pk for record in records)
    assert "key_hash" not in body and "password" not in body
    record_figure("export: lines", len(records))
    record_figure("export: models", len(expected))


def test_the_export_needs_a_read_key(world):
    response = make_api_client(world["tenant"], scopes=["ingest"]).get("/api/v1/export")
    assert response.status_code == 403


def test_the_export_command_writes_the_same_lines(world, tmp_path):
    target = tmp_path / "export.jsonl"
    call_command("tenant_export", world["tenant"].slug, output=str(target))
    records = exported(target.read_text().splitlines())
    assert records[0]["fields"]["slug"] == world["tenant"].slug
    assert sum(1 for r in records if r["model"] == "customers.UsageEvent") == 3
    assert any(MARKER in json.dumps(r) for r in records if r["model"] == "customers.Account")


def test_tenant_delete_removes_every_row_of_the_tenant_and_nothing_else(world):
    tenant = world["tenant"]
    others_before = {t.slug: row_counts(t) for t in Tenant.objects.exclude(pk=tenant.pk)}
    assert sum(row_counts(tenant).values()) > 30

    out = io.StringIO()
    call_command("tenant_delete", tenant.slug, "--yes", stdout=out)

    assert not Tenant.objects.filter(pk=tenant.pk).exists()
    assert {label: m.objects.for_tenant(tenant.pk).count() for label, m in labelled_models()} == {
        label: 0 for label, _ in labelled_models()
    }
    assert {t.slug: row_counts(t) for t in Tenant.objects.all()} == others_before
    assert f"Deleted tenant {tenant.slug!r}" in out.getvalue()


def test_tenant_delete_without_yes_deletes_nothing(world):
    before = row_counts(world["tenant"])
    with pytest.raises(CommandError, match="--yes"):
        call_command("tenant_delete", world["tenant"].slug)
    assert row_counts(world["tenant"]) == before


def labelled_models():
    return [(m._meta.label, m) for m in tenant_models()]


# Field names that hold credentials; an exported field with such a name must be declared a secret.
SECRET_LIKE = re.compile(r"secret|password|token|webhook_url|hash", re.IGNORECASE)


def test_no_exported_field_is_named_like_a_secret():
    exported = {m._meta.label: exported_fields(m) for m in [User, *tenant_models()]}

    leaks = {label: [name for name in names if SECRET_LIKE.search(name)] for label, names in exported.items()}

    assert {label: names for label, names in leaks.items() if names} == {}


def test_every_declared_secret_field_exists():
    declared = {(label, name) for label, names in SECRET_FIELDS.items() for name in names}
    existing = {(m._meta.label, f.attname) for m in tenant_models() for f in m._meta.concrete_fields}
    assert declared <= existing


def test_the_export_hides_secrets_and_their_copies_in_other_rows(world):
    tenant = world["tenant"]
    slack_url = "http://127.0.0.1:9/services/T0/B0/zqxa-slack-token"
    # A loopback target: the SSRF guard resolves hosts, and no request is sent here.
    with override_settings(CSP_WEBHOOK_ALLOW_PRIVATE=True):
        alert_rule_create(
            tenant=tenant, actor=world["admin"], key="slack_rule", name="Slack rule",
            condition_text="account.mrr > 0", channels=[Channel.SLACK], slack_webhook_url=slack_url,
        )
    Notification.objects.create(
        tenant=tenant, alert=Alert.objects.for_tenant(tenant).first(), channel=Channel.SLACK, recipient=slack_url,
        subject="Alert", text="Alert", idempotency_key=f"alert:1:slack:{slack_url}", last_error=f"POST {slack_url}: 500",
    )
    secrets = [
        slack_url,
        *WebhookSubscription.objects.for_tenant(tenant).values_list("secret", flat=True),
        *ApiKey.objects.for_tenant(tenant).values_list("key_hash", flat=True),
    ]

    response = make_api_client(tenant, scopes=["read"]).get("/api/v1/export")
    body = b"".join(response.streaming_content).decode()

    assert len(secrets) >= 4
    assert [secret for secret in secrets if secret in body] == []
    records = exported(body.splitlines())
    assert [r["fields"]["recipient"] for r in records if r["fields"].get("channel") == Channel.SLACK] == ["[hidden]"]
    assert all(SECRET_FIELDS.get(r["model"], set()).isdisjoint(r["fields"]) for r in records)


def test_tenant_delete_removes_users_of_no_other_tenant_and_keeps_everyone_else(world):
    tenant, other = world["tenant"], world["other"]
    only_here = world["admin"]
    shared = UserFactory(email="shared@example.com")
    staff = UserFactory(email="operator@example.com", is_staff=True)
    elsewhere = UserFactory(email="elsewhere@example.com")
    for user in (shared, staff):
        MembershipFactory(tenant=tenant, user=user, role=Role.CSM)
    MembershipFactory(tenant=other, user=shared, role=Role.VIEWER)
    MembershipFactory(tenant=other, user=elsewhere, role=Role.ADMIN)

    deleted = tenant_delete(tenant=tenant)

    assert deleted["tenancy.User"] == 1
    assert not User.objects.filter(pk=only_here.pk).exists()
    assert set(User.objects.filter(pk__in=[shared.pk, staff.pk, elsewhere.pk])) == {shared, staff, elsewhere}
    assert set(User.objects.filter(memberships__tenant=other)) == {shared, elsewhere}
