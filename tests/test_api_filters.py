"""Yes-or-no list filters read true or false and refuse anything else, rather than listing everything."""

import pytest
from django.utils import timezone

from playbooks.models import Task

from .factories import AccountFactory

pytestmark = pytest.mark.django_db

YES_OR_NO = [
    ("/api/v1/notes/", "pinned"),
    ("/api/v1/alerts/", "snoozed"),
    ("/api/v1/tasks/", "open"),
    ("/api/v1/contact-changes/", "removed"),
]


@pytest.mark.parametrize("path, name", YES_OR_NO)
@pytest.mark.parametrize("value", ["maybe", "yes", "2", "tru"])
def test_a_yes_or_no_filter_refuses_a_value_it_cannot_read_naming_the_field(api, path, name, value):
    response = api.get(path, {name: value})

    assert response.status_code == 400
    assert [(error["field"], error["message"]) for error in response.json()["error"]["fields"]] == [
        (name, "Must be true or false.")
    ]


@pytest.mark.parametrize("value, listed", [("true", ["Call"]), ("TRUE", ["Call"]), ("1", ["Call"]),
                                           ("false", ["Done"]), ("0", ["Done"]), ("", ["Call", "Done"])])
def test_a_yes_or_no_filter_reads_true_and_false_in_any_case_or_as_digits(api, tenant, value, listed):
    account = AccountFactory(tenant=tenant)
    Task.objects.create(tenant=tenant, account=account, title="Call")
    Task.objects.create(tenant=tenant, account=account, title="Done", completed_at=timezone.now())

    response = api.get("/api/v1/tasks/", {"open": value})

    assert sorted(task["title"] for task in response.json()["results"]) == listed
