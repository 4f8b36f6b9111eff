import pytest
from django.core.management import call_command

from csplatform.tenancy.models import ApiKey
from csplatform.tenancy.services import api_key_create, api_key_revoke

from ..conftest import make_api_client

pytestmark = pytest.mark.django_db


def test_api_key_is_stored_only_as_a_hash(tenant):
    api_key, raw_key = api_key_create(tenant=tenant, name="crm", scopes=["read"])
    stored = ApiKey.objects.for_tenant(tenant).get(pk=api_key.pk)
    assert raw_key not in (stored.key_hash, stored.prefix, stored.name)
    assert raw_key.startswith(stored.prefix)


def test_whoami_names_the_keys_tenant_and_scopes(tenant):
    client = make_api_client(tenant, scopes=["read"])
    response = client.get("/api/v1/whoami/")
    assert response.status_code == 200
    assert response.json()["tenant"]["slug"] == "alpha"
    assert response.json()["scopes"] == ["read"]


def test_revoked_key_is_refused_at_once(tenant):
    client = make_api_client(tenant, scopes=["read"])
    api_key = ApiKey.objects.for_tenant(tenant).get()
    assert client.get("/api/v1/whoami/").status_code == 200
    api_key_revoke(tenant=tenant, api_key=api_key)
    response = client.get("/api/v1/whoami/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_request_without_key_is_unauthorised(client):
    response = client.get("/api/v1/whoami/")
    assert response.status_code == 401


def test_create_api_key_command_prints_the_key_last(tenant, capsys):
    call_command("create_api_key", "alpha", "--name", "etl", "--scopes", "read,ingest")
    raw_key = capsys.readouterr().out.strip().splitlines()[-1]
    client = make_api_client(tenant)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert client.get("/api/v1/whoami/").json()["scopes"] == ["ingest", "read"]
