import datetime as dt

import pytest

from csplatform.tenancy.models import AuditLogEntry
from csplatform.tenancy.services import api_key_create, audit_record
from csplatform.tenancy.settings_views import audit_fields
from lifecycle.services import stage_create, stage_update

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
    assert "<dt>name</dt>\n    <dd>Segment</dd>" in html
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


def test_a_change_shows_only_the_fields_it_changed_from_before_to_after(admin_client, tenant, alice):
    stage = stage_create(tenant=tenant, actor=alice, key="trial", name="Trial", expected_days=14)
    stage_update(tenant=tenant, stage=stage, actor=alice, name="Free trial")

    html = page(admin_client.get(URL, {"action": "stage.updated"}))

    assert "<dt>name</dt>" in html and "<del>Trial</del> → <ins>Free trial</ins>" in html
    assert "<dt>expected_days</dt>" not in html
    assert "Full record" in html and "&quot;expected_days&quot;: 14" in html

    html = page(admin_client.get(URL, {"action": "stage.created"}))
    assert "Show its 12 fields" in html and "<dt>expected_days</dt>" in html


def test_a_creation_or_a_deletion_lists_every_field_it_recorded():
    record = {"name": "Segment", "scopes": ["ingest", "read"], "revoked": None, "note": ""}

    created = audit_fields(None, record)
    deleted = audit_fields(record, None)

    assert created == [
        ("name", None, "Segment"),
        ("scopes", None, "ingest, read"),
        ("revoked", None, "(none)"),
        ("note", None, "(empty)"),
    ]
    assert deleted == [(name, after, before) for name, before, after in created]


def test_a_field_added_or_dropped_by_a_change_shows_as_none_on_the_other_side():
    assert audit_fields({"a": 1, "gone": "x"}, {"a": 1, "new": {"k": [1, 2]}}) == [
        ("gone", "x", "(none)"),
        ("new", "(none)", '{"k": [1, 2]}'),
    ]


def test_a_record_that_is_not_a_set_of_fields_stands_as_one_unnamed_row():
    assert audit_fields(["a", "b"], ["a"]) == [("", "a, b", "a")]
    assert audit_fields(None, None) == []


def test_a_short_record_of_one_side_shows_its_fields_in_place(admin_client, tenant, alice):
    audit_record(tenant=tenant, actor=alice, action="webhook.retried", obj=tenant, after={"deliveries": 3})

    html = page(admin_client.get(URL))

    assert "<dt>deliveries</dt>\n    <dd>3</dd>" in html and "Show its" not in html


def test_a_value_too_long_for_a_row_folds_under_its_first_words(admin_client, tenant):
    stages = [{"key": f"stage_{number}", "description": "A stage of the customer's journey."} for number in range(5)]
    audit_record(tenant=tenant, action="stages.template_applied", obj=tenant, before={}, after={"stages": stages})

    html = page(admin_client.get(URL))

    assert '<details class="audit-value"><summary>[{&quot;key&quot;: &quot;stage_0&quot;' in html
    assert "stage_4" in html


def test_each_change_names_its_author_and_the_log_filters_by_them_a_member_or_the_platform(admin_client, tenant, alice):
    stage_create(tenant=tenant, actor=alice, key="trial", name="Trial")
    stage_create(tenant=tenant, actor=None, key="paid", name="Paid")

    by_alice = page(admin_client.get(URL, {"who": alice.pk}))
    by_the_platform = page(admin_client.get(URL, {"who": "system"}))
    by_no_one_known = page(admin_client.get(URL, {"who": "nobody"}))

    assert "Trial" in by_alice and "Paid" not in by_alice
    assert 'Alice Admin<span class="muted block">alice@alpha.example</span>' in by_alice
    assert "<td>The platform</td>" in by_the_platform
    assert "Paid" in by_the_platform and "Trial" not in by_the_platform
    assert f'<option value="{alice.pk}" selected>alice@alpha.example</option>' in by_alice
    assert "Trial" in by_no_one_known and "Paid" in by_no_one_known


@pytest.fixture
def three_days_of_changes(tenant, alice):
    for day, name in ((1, "First"), (2, "Second"), (3, "Third")):
        stage_create(tenant=tenant, actor=alice, key=name.lower(), name=name)
        entries = AuditLogEntry.objects.for_tenant(tenant).filter(object_repr=name)
        entries.update(created_at=dt.datetime(2026, 11, day, 12, tzinfo=dt.timezone.utc))


def test_the_log_shows_the_changes_of_the_days_chosen(admin_client, three_days_of_changes):
    from_the_second = page(admin_client.get(URL, {"since": "2026-11-02"}))
    to_the_second = page(admin_client.get(URL, {"until": "2026-11-02"}))
    the_second = page(admin_client.get(URL, {"since": "2026-11-02", "until": "2026-11-02"}))

    assert "First" not in from_the_second and "Second" in from_the_second and "Third" in from_the_second
    assert "First" in to_the_second and "Second" in to_the_second and "Third" not in to_the_second
    assert "2 changes" not in the_second and "1 change" in the_second and "Second" in the_second


def test_a_to_day_before_the_from_day_is_an_error_beside_it_and_the_from_day_still_applies(
    admin_client, three_days_of_changes
):
    html = page(admin_client.get(URL, {"since": "2026-11-02", "until": "2026-11-01"}))

    assert "Choose Nov 2, 2026 or a later day: the first day shown." in html
    assert "First" not in html and "Second" in html and "Third" in html


def test_a_day_that_does_not_exist_is_an_error_beside_its_filter(admin_client, three_days_of_changes):
    html = page(admin_client.get(URL, {"since": "2026-11-31"}))

    assert '<p class="field-error">Enter a valid date.</p>' in html and "First" in html and "Clear filters" in html
