import pytest

from csplatform.rules.metrics import BUILTIN_METRICS
from csplatform.tenancy.models import AuditLogEntry
from health.models import HealthSettings, Scorecard
from lifecycle.services import stage_create

from ..factories import AccountFactory
from .conftest import page

pytestmark = pytest.mark.django_db
URL = "/t/alpha/settings/scorecards/"
SOURCE = next(iter(BUILTIN_METRICS["account"]))


def measures(*rows, initial=0):
    """Management form plus one form per row of field values (prefix "measures")."""
    data = {"measures-TOTAL_FORMS": str(len(rows)), "measures-INITIAL_FORMS": str(initial)}
    for index, row in enumerate(rows):
        defaults = {"weight": "1", "mapping_type": "thresholds", "direction": "higher_is_better", "missing": "skip"}
        for name, value in (defaults | row).items():
            data[f"measures-{index}-{name}"] = value
    return data


def test_the_list_offers_a_default_scorecard_and_one_per_stage(admin_client, tenant, alice):
    stage_create(tenant=tenant, actor=alice, key="trial", name="Trial")
    html = page(admin_client.get(URL))
    assert "None: accounts are not scored" in html
    assert "Create for Trial" in html


def test_publishing_the_default_scorecard(admin_client, tenant, alice):
    data = {"name": "Default", "note": "first", "action": "publish"} | measures(
        {"source": SOURCE, "bad": "0", "good": "20"}, {"source": "account.mrr", "mapping_type": "bands", "bands": "100:0, 1000:60, :100"}
    )
    response = admin_client.post(f"{URL}new/", data)
    assert response.status_code == 302
    scorecard = Scorecard.objects.for_tenant(tenant).get(stage=None)
    version = scorecard.published_version
    assert [m["source"] for m in version.measures] == [SOURCE, "account.mrr"]
    assert version.measures[1]["mapping"]["bands"] == [[100.0, 0.0], [1000.0, 60.0], [None, 100.0]]
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="scorecard.published", actor=alice).exists()
    html = page(admin_client.get(f"{URL}{scorecard.pk}/"))
    assert "100:0, 1000:60, :100" in html and "published" in html


def test_measure_errors_show_on_their_fields_and_keep_the_rows(admin_client, tenant):
    data = {"name": "Default", "action": "publish"} | measures(
        {"source": "metric_that_does_not_exist", "bad": "0", "good": "5", "label": "Kept"},
        {"source": SOURCE, "bad": "10", "good": "2"},
    )
    html = page(admin_client.post(f"{URL}new/", data))
    assert "Unknown metric or field &#x27;metric_that_does_not_exist&#x27;." in html
    assert "When higher is better, good must be greater than bad." in html
    assert 'value="Kept"' in html and 'value="metric_that_does_not_exist"' in html
    assert not Scorecard.objects.for_tenant(tenant).exists()


def test_bands_that_do_not_parse_are_explained_and_kept(admin_client, tenant):
    data = {"name": "Default", "action": "publish"} | measures(
        {"source": "account.mrr", "mapping_type": "bands", "bands": "oops"}
    )
    html = page(admin_client.post(f"{URL}new/", data))
    assert "has no colon" in html and 'value="oops"' in html
    assert not Scorecard.objects.for_tenant(tenant).exists()


def test_preview_compares_now_and_after_without_saving(admin_client, tenant):
    AccountFactory(tenant=tenant, name="Rich", mrr=5000)
    AccountFactory(tenant=tenant, name="Poor", mrr=10)
    data = {"name": "Default", "action": "preview"} | measures(
        {"source": "account.mrr", "bad": "100", "good": "1000"}
    )
    html = page(admin_client.post(f"{URL}new/", data))
    assert "Preview: 2 accounts scored now and with these measures" in html
    assert "2 accounts would change colour" in html
    assert "not scored (—) → green (100.0)" in html
    assert not Scorecard.objects.for_tenant(tenant).exists()


def test_a_draft_is_saved_then_published_from_the_versions_list(admin_client, tenant):
    first = {"name": "Default", "action": "publish"} | measures({"source": SOURCE, "bad": "0", "good": "20"})
    admin_client.post(f"{URL}new/", first)
    scorecard = Scorecard.objects.for_tenant(tenant).get()
    draft = {"name": "Default", "action": "draft", "note": "stricter"} | measures(
        {"source": SOURCE, "bad": "0", "good": "40"}, initial=1
    )
    admin_client.post(f"{URL}{scorecard.pk}/", draft)
    scorecard.refresh_from_db()
    assert scorecard.published_version.number == 1
    draft_version = scorecard.versions.get(number=2)
    assert draft_version.note == "stricter"
    admin_client.post(f"{URL}{scorecard.pk}/versions/{draft_version.pk}/publish/")
    scorecard.refresh_from_db()
    assert scorecard.published_version == draft_version


def test_colour_bands_are_validated_and_saved(admin_client, tenant):
    html = page(admin_client.post(URL, {"red_below": "80", "green_from": "50"}))
    assert "Green must start at or above where red ends." in html and 'value="80"' in html
    admin_client.post(URL, {"red_below": "30", "green_from": "80"})
    settings = HealthSettings.objects.for_tenant(tenant).get()
    assert (settings.red_below, settings.green_from) == (30, 80)
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="health_settings.updated").exists()
