import re

import pytest
from rest_framework.test import APIClient

from csplatform.tenancy.models import ApiKey, AuditLogEntry
from csplatform.tenancy.services import api_key_create

from .conftest import page

pytestmark = pytest.mark.django_db
URL = "/t/alpha/settings/api-keys/"


def test_without_keys_the_page_says_what_keys_are_for(admin_client):
    assert "No API keys yet" in page(admin_client.get(URL))


def test_a_new_key_is_shown_once_and_works_against_the_api(admin_client, tenant, alice):
    response = admin_client.post(URL, {"name": "Segment production", "scopes": ["read", "ingest"]}, follow=True)
    html = page(response)
    raw_key = re.search(r'value="(csp_[^"]+)"', html).group(1)
    assert "this is the only time it is shown" in html
    assert "no-store" in response["Cache-Control"]
    api_key = ApiKey.objects.for_tenant(tenant).get()
    assert api_key.scopes == ["ingest", "read"] and api_key.created_by == alice

    again = page(admin_client.get(response.redirect_chain[-1][0]))
    assert raw_key not in again and "cannot be shown again" in again
    assert raw_key not in page(admin_client.get(URL))
    assert api_key.prefix in page(admin_client.get(URL))

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert client.get("/api/v1/accounts/").status_code == 200
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="api_key.created", actor=alice).exists()


def test_a_key_without_a_scope_is_refused_and_keeps_the_name(admin_client, tenant):
    html = page(admin_client.post(URL, {"name": "Reporting"}))
    assert "This field is required." in html and 'value="Reporting"' in html
    assert not ApiKey.objects.for_tenant(tenant).exists()


def test_revoking_a_key_stops_it_and_is_audited(admin_client, tenant, alice):
    admin_client.post(URL, {"name": "Old", "scopes": ["read"]}, follow=True)
    api_key = ApiKey.objects.for_tenant(tenant).get()
    response = admin_client.post(f"{URL}{api_key.pk}/revoke/", follow=True)
    assert "Revoked Old" in page(response)
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert "Revoked" in page(admin_client.get(URL))
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="api_key.revoked", actor=alice).exists()


def test_a_key_of_another_tenant_cannot_be_revoked_from_here(admin_client, other_tenant):
    theirs, _ = api_key_create(tenant=other_tenant, name="theirs", scopes=["read"])
    assert admin_client.post(f"{URL}{theirs.pk}/revoke/").status_code == 404
    assert admin_client.get(f"{URL}{theirs.pk}/created/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
