"""A tenant can take all of its data away, and have all of it deleted, without touching anyone else's."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from csplatform.tenancy.models import Tenant, User
from tests.conftest import make_api_client
from tests.factories import AccountFactory, ContactFactory, TenantFactory, UsageEventFactory

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
    print(f"export: {len(records)} lines for {len(expected)} models")


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
    users_before = User.objects.count()
    assert sum(row_counts(tenant).values()) > 30

    out = io.StringIO()
    call_command("tenant_delete", tenant.slug, "--yes", stdout=out)

    assert not Tenant.objects.filter(pk=tenant.pk).exists()
    assert {label: m.objects.for_tenant(tenant.pk).count() for label, m in labelled_models()} == {
        label: 0 for label, _ in labelled_models()
    }
    assert {t.slug: row_counts(t) for t in Tenant.objects.all()} == others_before
    assert User.objects.count() == users_before
    assert f"Deleted tenant {tenant.slug!r}" in out.getvalue()


def test_tenant_delete_without_yes_deletes_nothing(world):
    before = row_counts(world["tenant"])
    with pytest.raises(CommandError, match="--yes"):
        call_command("tenant_delete", world["tenant"].slug)
    assert row_counts(world["tenant"]) == before


def labelled_models():
    return [(m._meta.label, m) for m in tenant_models()]
