import pytest

from csplatform.rules.services import metric_definition_create
from csplatform.tenancy.models import ApiKey
from lifecycle.services import stage_create

pytestmark = pytest.mark.django_db

PAGES = [
    "",
    "stages/",
    "stages/new/",
    "scorecards/",
    "scorecards/new/",
    "metrics/",
    "metrics/new/",
    "members/",
    "api-keys/",
    "audit/",
    "pipeline/",
]


@pytest.mark.parametrize("path", PAGES)
def test_an_admin_opens_every_settings_page(admin_client, path):
    response = admin_client.get(f"/t/alpha/settings/{path}", follow=True)
    assert response.status_code == 200
    assert 'aria-label="Settings"' in response.content.decode()


@pytest.mark.parametrize("path", PAGES)
def test_a_csm_is_refused_with_a_page_that_names_the_admins(client, bob, alice, path):
    client.force_login(bob)
    response = client.get(f"/t/alpha/settings/{path}")
    assert response.status_code == 403
    html = response.content.decode()
    assert "Settings are for admins" in html
    assert "alice@alpha.example" in html


def test_a_viewer_is_refused_too(client, vera, alice):
    client.force_login(vera)
    assert client.get("/t/alpha/settings/stages/").status_code == 403


def test_a_csm_cannot_change_anything_by_posting(client, bob, tenant):
    client.force_login(bob)
    response = client.post("/t/alpha/settings/api-keys/", {"name": "sneaky", "scopes": ["read"]})
    assert response.status_code == 403
    response = client.post("/t/alpha/settings/metrics/new/", {"key": "x", "label": "x", "event_names": "login"})
    assert response.status_code == 403
    assert not ApiKey.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize("path", PAGES)
def test_an_admin_of_another_tenant_gets_not_found(client, charlie, path):
    client.force_login(charlie)
    assert client.get(f"/t/alpha/settings/{path}").status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(client, tenant):
    response = client.get("/t/alpha/settings/stages/")
    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_another_tenants_objects_answer_not_found_even_to_an_admin(admin_client, other_tenant, charlie):
    stage = stage_create(tenant=other_tenant, actor=charlie, key="theirs", name="Theirs")
    metric = metric_definition_create(tenant=other_tenant, fields={"key": "theirs", "label": "T", "event_names": ["x"]})
    assert admin_client.get(f"/t/alpha/settings/stages/{stage.pk}/").status_code == 404
    assert admin_client.post(f"/t/alpha/settings/stages/{stage.pk}/delete/").status_code == 404
    assert admin_client.get(f"/t/alpha/settings/metrics/{metric.pk}/").status_code == 404
    assert admin_client.post(f"/t/alpha/settings/metrics/{metric.pk}/delete/").status_code == 404
