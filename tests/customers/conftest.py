import pytest
from rest_framework.test import APIClient

from csplatform.tenancy.services import api_key_create


@pytest.fixture
def crm_key(tenant, alice):
    """The raw key of an integration that Alice set up."""
    _, raw_key = api_key_create(tenant=tenant, name="CRM sync", scopes=["read", "write", "ingest"], created_by=alice)
    return raw_key


@pytest.fixture
def crm(crm_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {crm_key}")
    return client


def key_label(raw_key):
    """Who a change made with the CRM key says made it."""
    return f"Alice Admin via key CRM sync ({raw_key[:12]}…)"


def story_of(client, account, kind):
    """The account's activity entries of one kind as the activity API tells them: (text, detail, by), newest
    first."""
    response = client.get(f"/api/v1/accounts/{account.pk}/activity/?kind={kind}")
    assert response.status_code == 200, response.content
    return [(entry["text"], entry["detail"], entry["by"]) for entry in response.json()["results"]]
