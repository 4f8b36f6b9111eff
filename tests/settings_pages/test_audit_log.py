import pytest

from csplatform.tenancy.services import api_key_create, audit_record
from lifecycle.services import stage_create

from .conftest import page

pytestmark = pytest.mark.django_db
URL = "/t/alpha/settings/audit/"


def test_an_empty_log_says_what_will_appear(admin_client):
    assert "No changes recorded yet" in page(admin_client.get(URL))


def test_entries_show_who_what_before_and_after_and_filter_by_action(admin_client, tenant, alice, other_tenant):
    stage_create(tenant=tenant, actor=alice, key="trial", name="Trial")
    api_key_create(tenant=tenant, name="Segment", scopes=["ingest"], created_by=alice)
    api_key_create(tenant=other_tenant, name="Not ours", scopes=["read"])
    html = page(admin_client.get(URL))
    assert "stage.created" in html and "api_key.created" in html
    assert "alice@alpha.example" in html
    assert "&quot;name&quot;: &quot;Segment&quot;" in html
    assert "Not ours" not in html

    html = page(admin_client.get(URL, {"action": "api_key.created"}))
    assert "Segment" in html and "stage.created</code>" not in html
    html = page(admin_client.get(URL, {"action": "no.such.action"}))
    assert "stage.created</code>" in html


def test_the_log_is_paginated(admin_client, tenant, alice):
    for number in range(55):
        audit_record(tenant=tenant, actor=alice, action="test.touched", obj=tenant, after={"n": number})
    html = page(admin_client.get(URL))
    assert "55 changes, showing 1–50" in html and "Page 1 of 2" in html
    assert "Page 2 of 2" in page(admin_client.get(URL, {"page": 2}))
