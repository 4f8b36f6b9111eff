"""Seed 004's expansion play: usage near the plan's limit in the Expansion stage flags an opportunity the CSM sees."""

import datetime as dt
import itertools

import pytest
import time_machine

from lifecycle.services import account_move_stage, stages_apply_template
from playbooks.models import ExpansionOpportunity, Playbook, Run, RunStatus, Task
from playbooks.runner import steps_run_due
from playbooks.services import playbook_templates_install, playbooks_enroll
from tests.factories import AccountFactory
from tests.pages.conftest import queries_per_request

pytestmark = pytest.mark.django_db

MONDAY_NOON = dt.datetime(2024, 3, 4, 12, 0, tzinfo=dt.UTC)
numbers = itertools.count()


def flag(account, title, *, source="playbook:expansion_near_limit"):
    return ExpansionOpportunity.objects.create(
        tenant=account.tenant, account=account, title=title, source=source, key=f"test:{next(numbers)}"
    )


@pytest.fixture
def acme(tenant, bob):
    return AccountFactory(tenant=tenant, name="Acme Rockets", owner=bob, plan="team")


def test_the_expansion_template_flags_an_opportunity_and_a_task_once_usage_nears_the_plans_limit(
    tenant, alice, bob, acme
):
    stages = {
        stage.key: stage for stage in stages_apply_template(tenant=tenant, template_key="eight_stages", actor=alice)
    }
    (playbook,) = playbook_templates_install(tenant=tenant, keys=["expansion_near_limit"])
    acme.attributes = {"plan_usage_percent": 55}
    acme.save()

    with time_machine.travel(MONDAY_NOON, tick=False) as clock:
        account_move_stage(tenant=tenant, account=acme, to_stage=stages["expansion"], actor=alice, reason="Growing")
        assert playbooks_enroll(tenant=tenant, account_ids=[acme.pk], stage_changes=[acme.pk]) == {playbook.pk: 1}

        # A day later usage is still well inside the plan: nothing is flagged, the check comes back tomorrow.
        clock.shift(dt.timedelta(days=1))
        steps_run_due()
        assert not ExpansionOpportunity.objects.for_tenant(tenant).exists()

        acme.attributes = {"plan_usage_percent": 92}
        acme.save()
        clock.shift(dt.timedelta(days=1))
        # Each pass runs the steps due at its start; the flag and the task follow the check at once.
        while steps_run_due():
            pass

    (opportunity,) = ExpansionOpportunity.objects.for_tenant(tenant)
    assert (opportunity.account, opportunity.title) == (acme, "Near the plan's limit: Acme Rockets")
    assert "team plan" in opportunity.note
    (task,) = Task.objects.for_tenant(tenant)
    assert task.owner == bob and task.title.startswith("Talk to Acme Rockets about a bigger plan")
    assert Run.objects.for_tenant(tenant).get().status == RunStatus.COMPLETED


def test_an_admin_reviews_and_installs_the_expansion_template_where_the_stage_exists(client, tenant, alice):
    stages_apply_template(tenant=tenant, template_key="eight_stages", actor=alice)
    client.force_login(alice)
    url = "/t/alpha/settings/playbooks/library/expansion_near_limit/"

    assert "Flag an expansion opportunity" in client.get(url).content.decode()
    client.post(url)

    playbook = Playbook.objects.for_tenant(tenant).get(key="expansion_near_limit")
    assert (playbook.trigger_config, playbook.enabled) == ({"stage": "expansion"}, False)


def test_the_account_page_shows_its_expansion_opportunities_with_the_flagging_playbook(client, tenant, bob, acme):
    Playbook.objects.create(tenant=tenant, key="expansion_near_limit", name="Near the limit", trigger_type="manual")
    flag(acme, "Near the plan's limit: Acme Rockets")
    flag(AccountFactory(tenant=tenant, name="Globex"), "Globex wants more seats")
    client.force_login(bob)

    html = client.get(f"/t/alpha/accounts/{acme.pk}/").content.decode()

    assert "Expansion opportunities" in html
    assert "Near the plan&#x27;s limit: Acme Rockets" in html and "<td>Near the limit</td>" in html
    assert "Globex wants more seats" not in html


def test_the_account_page_reads_opportunities_in_a_fixed_number_of_queries(client, tenant, bob, acme):
    url = f"/t/alpha/accounts/{acme.pk}/"
    flag(acme, "First")
    client.force_login(bob)
    client.get(url)  # warm the session and content-type caches
    few = queries_per_request(client, url, tenant)
    for number in range(8):
        flag(acme, f"Opportunity {number}", source=f"playbook:play_{number}")
    assert queries_per_request(client, url, tenant) == few


def test_an_account_without_opportunities_says_so(client, bob, acme):
    client.force_login(bob)
    assert "No expansion opportunity flagged" in client.get(f"/t/alpha/accounts/{acme.pk}/").content.decode()


def test_opportunities_are_listed_by_account_and_creation_time(api, tenant, acme):
    globex = AccountFactory(tenant=tenant, name="Globex")
    with time_machine.travel(MONDAY_NOON, tick=False):
        flag(acme, "Old news")
    recent = flag(acme, "Near the limit")
    flag(globex, "Globex wants more seats")

    def titles(query):
        response = api.get(f"/api/v1/expansion-opportunities/{query}")
        assert response.status_code == 200, response.content
        return [row["title"] for row in response.json()["results"]]

    assert titles("") == ["Globex wants more seats", "Near the limit", "Old news"]
    assert titles(f"?account={acme.pk}") == ["Near the limit", "Old news"]
    assert titles(f"?account={acme.pk}&created_after=2024-03-05T00:00:00Z") == ["Near the limit"]
    assert titles("?created_before=2024-03-05T00:00:00Z") == ["Old news"]
    detail = api.get(f"/api/v1/expansion-opportunities/{recent.pk}/").json()
    assert (detail["account"], detail["source"]) == (acme.pk, "playbook:expansion_near_limit")


def test_another_tenants_opportunity_is_not_listed_and_answers_404(api, tenant, other_tenant):
    theirs = flag(AccountFactory(tenant=other_tenant), "Their secret deal")

    assert api.get("/api/v1/expansion-opportunities/").json()["results"] == []
    assert api.get(f"/api/v1/expansion-opportunities/{theirs.pk}/").status_code == 404
    assert api.get(f"/api/v1/expansion-opportunities/?account={theirs.account_id}").json()["results"] == []


def test_a_malformed_date_filter_answers_400(api):
    assert api.get("/api/v1/expansion-opportunities/?created_after=yesterday").status_code == 400
