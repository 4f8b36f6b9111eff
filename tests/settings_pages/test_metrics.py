import pytest

from csplatform.rules.models import MetricDefinition
from csplatform.tenancy.models import AuditLogEntry

from .conftest import page

pytestmark = pytest.mark.django_db
URL = "/t/alpha/settings/metrics/"


def metric_data(**overrides):
    data = {
        "key": "reports_30d", "label": "Reports in 30 days", "subject": "account", "event_names": "report_created, report_shared",
        "window_days": "30", "aggregation": "count", "property": "", "description": "",
    }
    return data | overrides


def test_without_metrics_the_page_explains_what_to_add(admin_client):
    assert "No metrics of your own yet" in page(admin_client.get(URL))


def test_creating_a_metric_saves_it_and_audits_it(admin_client, tenant, alice):
    assert admin_client.post(f"{URL}new/", metric_data()).status_code == 302
    definition = MetricDefinition.objects.for_tenant(tenant).get()
    assert definition.event_names == ["report_created", "report_shared"]
    assert "metric.reports_30d" in page(admin_client.get(URL))
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="metric.created", actor=alice).exists()


def test_service_errors_land_on_their_fields_and_nothing_typed_is_lost(admin_client, tenant):
    html = page(admin_client.post(f"{URL}new/", metric_data(property="seconds", label="Kept label")))
    assert "read a property; leave it empty." in html
    assert 'value="Kept label"' in html and "report_created\nreport_shared" not in html
    assert "report_created, report_shared</textarea>" in html
    assert not MetricDefinition.objects.for_tenant(tenant).exists()


def test_a_bad_key_and_window_are_explained(admin_client):
    html = page(admin_client.post(f"{URL}new/", metric_data(key="Bad Key", window_days="900")))
    assert "Use a lowercase letter" in html
    assert "less than or equal to 365" in html


def test_editing_keeps_the_key(admin_client, tenant):
    admin_client.post(f"{URL}new/", metric_data())
    definition = MetricDefinition.objects.for_tenant(tenant).get()
    response = admin_client.post(f"{URL}{definition.pk}/", metric_data(key="other", window_days="7"))
    assert response.status_code == 302
    definition.refresh_from_db()
    assert (definition.key, definition.window_days) == ("reports_30d", 7)


def test_deleting_asks_first_then_deletes(admin_client, tenant):
    admin_client.post(f"{URL}new/", metric_data())
    definition = MetricDefinition.objects.for_tenant(tenant).get()
    assert "stop working until you change them" in page(admin_client.get(f"{URL}{definition.pk}/delete/"))
    admin_client.post(f"{URL}{definition.pk}/delete/")
    assert not MetricDefinition.objects.for_tenant(tenant).exists()
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="metric.deleted").exists()
