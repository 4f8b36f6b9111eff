"""How far a tenant's results are behind its data: the pipeline's kept passes, the API, the page and the command."""

import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from csplatform import pipeline
from csplatform.customers.models import Account, DirtyAccount
from csplatform.customers.services import account_mark_dirty
from csplatform.models import PassStatus, PipelinePass

from .conftest import make_api_client
from .factories import AccountFactory
from .test_pipeline import configure, configured_tenant  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def mark(tenant, accounts):
    account_mark_dirty(tenant=tenant, account_ids=[account.pk for account in accounts])


def marked_accounts(tenant, count):
    """New accounts, marked as ingest or an edit would mark them."""
    accounts = AccountFactory.create_batch(count, tenant=tenant)
    mark(tenant, accounts)
    return accounts


def failing_recompute(*, tenant, account_ids):
    raise RuntimeError("the database went away")


def test_a_tenant_with_no_account_waiting_is_current_as_of_the_moment_it_asks(configured_tenant):
    marked_accounts(configured_tenant, 2)
    pipeline.recompute_dirty(tenant=configured_tenant, threads=1)

    freshness = pipeline.pipeline_freshness(tenant=configured_tenant)

    assert freshness.waiting_accounts == 0
    assert freshness.current_as_of == freshness.checked_at
    assert freshness.behind_seconds == 0


def oldest_mark(tenant):
    return DirtyAccount.objects.for_tenant(tenant).order_by("waiting_since").values_list("waiting_since", flat=True)[0]


def test_an_account_changed_after_the_last_pass_waits_and_the_results_are_behind_by_its_change_alone(
    configured_tenant,
):
    accounts = marked_accounts(configured_tenant, 3)
    pipeline.recompute_dirty(tenant=configured_tenant, threads=1)
    PipelinePass.objects.for_tenant(configured_tenant).update(opened_at=timezone.now() - dt.timedelta(hours=1))
    mark(configured_tenant, accounts[:1])

    freshness = pipeline.pipeline_freshness(tenant=configured_tenant)

    (last,) = freshness.recent_passes
    assert freshness.waiting_accounts == 1
    assert freshness.current_as_of == oldest_mark(configured_tenant) > last.opened_at
    assert freshness.behind_seconds < 60
    assert (last.status, last.accounts, last.moved) == (PassStatus.COMPLETE, 3, 3)
    assert freshness.running is None


def test_a_mark_set_again_keeps_the_moment_it_was_first_set(configured_tenant):
    (account,) = marked_accounts(configured_tenant, 1)
    first = oldest_mark(configured_tenant)

    mark(configured_tenant, [account])

    (dirty_at, waiting_since) = DirtyAccount.objects.for_tenant(configured_tenant).values_list(
        "dirty_at", "waiting_since"
    )[0]
    assert waiting_since == first < dirty_at


def test_marks_set_again_while_a_pass_read_them_leave_the_results_current_as_of_that_pass(
    configured_tenant, monkeypatch
):
    """Steady ingest: every account changes again as soon as a pass has read it, so its mark stays."""
    accounts = marked_accounts(configured_tenant, 3)
    first_marked = oldest_mark(configured_tenant)
    recompute = pipeline.recompute_accounts

    def recompute_then_change_again(*, tenant, account_ids):
        result = recompute(tenant=tenant, account_ids=account_ids)
        account_mark_dirty(tenant=tenant, account_ids=account_ids)
        return result

    monkeypatch.setattr(pipeline, "recompute_accounts", recompute_then_change_again)
    pipeline.recompute_dirty(tenant=configured_tenant, threads=1)
    freshness = pipeline.pipeline_freshness(tenant=configured_tenant)

    (last,) = freshness.recent_passes
    assert freshness.waiting_accounts == len(accounts)
    assert oldest_mark(configured_tenant) == first_marked < last.opened_at == freshness.current_as_of


def test_a_failed_pass_is_listed_as_failed_and_its_accounts_stay_behind_by_their_marks(
    configured_tenant, monkeypatch
):
    accounts = marked_accounts(configured_tenant, 2)
    pipeline.recompute_dirty(tenant=configured_tenant, threads=1)
    mark(configured_tenant, accounts)
    monkeypatch.setattr(pipeline, "recompute_accounts", failing_recompute)

    with pytest.raises(RuntimeError):
        pipeline.recompute_dirty(tenant=configured_tenant, threads=1)
    freshness = pipeline.pipeline_freshness(tenant=configured_tenant)

    failed, complete = freshness.recent_passes
    assert (failed.status, complete.status) == (PassStatus.FAILED, PassStatus.COMPLETE)
    assert freshness.waiting_accounts == 2
    assert complete.opened_at < freshness.current_as_of == oldest_mark(configured_tenant) < failed.opened_at


def test_a_tenant_keeps_only_its_latest_passes_and_another_tenants_are_left_alone(
    configured_tenant, other_tenant, monkeypatch
):
    monkeypatch.setattr(pipeline, "PASSES_KEPT", 3)
    configure(other_tenant)
    marked_accounts(other_tenant, 1)
    pipeline.recompute_dirty(tenant=other_tenant, threads=1)
    opened = []
    for _ in range(5):
        marked_accounts(configured_tenant, 1)
        pipeline.recompute_dirty(tenant=configured_tenant, threads=1)
        opened.append(PipelinePass.objects.for_tenant(configured_tenant).latest("opened_at").opened_at)

    kept = pipeline.pipeline_freshness(tenant=configured_tenant).recent_passes

    assert [each.opened_at for each in kept] == opened[:-4:-1]
    assert len(pipeline.pipeline_freshness(tenant=other_tenant).recent_passes) == 1


def test_a_pass_opened_by_a_process_that_died_shows_as_running_until_a_day_has_passed(configured_tenant):
    marked_accounts(configured_tenant, 1)
    passes = PipelinePass.objects.for_tenant(configured_tenant)
    dead = passes.create(tenant=configured_tenant, chunk_size=10, opened_at=timezone.now() - dt.timedelta(hours=2))

    assert pipeline.pipeline_freshness(tenant=configured_tenant).running == dead

    passes.filter(pk=dead.pk).update(opened_at=timezone.now() - pipeline.STALE_PASS_AGE - dt.timedelta(minutes=1))
    pipeline.recompute_dirty(tenant=configured_tenant, threads=1)

    assert not passes.filter(pk=dead.pk).exists()
    assert pipeline.pipeline_freshness(tenant=configured_tenant).running is None


def test_a_helper_asked_for_a_pass_that_has_ended_recomputes_nothing(configured_tenant, monkeypatch):
    accounts = marked_accounts(configured_tenant, 2)
    pipeline.recompute_dirty(tenant=configured_tenant, threads=1)
    (ended,) = PipelinePass.objects.for_tenant(configured_tenant)
    mark(configured_tenant, accounts)

    assert pipeline.pass_help(tenant=configured_tenant, pass_id=ended.pk) == 0
    assert Account.objects.for_tenant(configured_tenant).dirty().count() == 2


def test_the_api_tells_the_keys_tenant_how_far_behind_its_results_are_and_nothing_of_another_tenant(
    configured_tenant, other_tenant
):
    accounts = marked_accounts(configured_tenant, 3)
    pipeline.recompute_dirty(tenant=configured_tenant, threads=1)
    mark(configured_tenant, accounts[:2])
    configure(other_tenant)
    marked_accounts(other_tenant, 5)

    body = make_api_client(configured_tenant, scopes=["read"]).get("/api/v1/pipeline/").json()

    assert body["waiting_accounts"] == 2
    assert body["current_as_of"] == oldest_mark(configured_tenant).isoformat().replace("+00:00", "Z")
    assert body["behind_seconds"] >= 0 and body["running"] is None
    assert [(each["accounts"], each["moved"], each["status"]) for each in body["recent_passes"]] == [
        (3, 3, "complete")
    ]
    other = make_api_client(other_tenant, scopes=["read"]).get("/api/v1/pipeline/").json()
    assert (other["waiting_accounts"], other["recent_passes"]) == (5, [])
    assert other["current_as_of"] == oldest_mark(other_tenant).isoformat().replace("+00:00", "Z")


def test_the_pipeline_endpoint_needs_the_read_scope(tenant):
    response = make_api_client(tenant, scopes=["ingest"]).get("/api/v1/pipeline/")

    assert response.status_code == 403


def test_the_settings_page_shows_the_accounts_waiting_and_the_latest_passes(client, alice, configured_tenant):
    accounts = marked_accounts(configured_tenant, 4)
    pipeline.recompute_dirty(tenant=configured_tenant, threads=1)
    mark(configured_tenant, accounts[:3])
    client.force_login(alice)

    html = client.get("/t/alpha/settings/pipeline/").content.decode()

    assert "3 accounts waiting" in html
    assert "is in the results" in html
    assert '<td class="num">4</td>' in html and "Complete" in html


def test_the_settings_page_says_up_to_date_when_nothing_waits(client, alice, configured_tenant):
    client.force_login(alice)

    html = client.get("/t/alpha/settings/pipeline/").content.decode()

    assert "Up to date." in html
    assert "No pass yet" in html


def test_the_status_command_lists_each_tenant_with_its_waiting_accounts_and_last_pass(configured_tenant, other_tenant):
    marked_accounts(configured_tenant, 2)
    pipeline.recompute_dirty(tenant=configured_tenant, threads=1)
    marked_accounts(other_tenant, 3)
    out = StringIO()

    call_command("pipeline_status", stdout=out)

    alpha, beta = out.getvalue().splitlines()[1:]
    assert alpha.split()[:4] == ["alpha", "0", "0.0", "s"] and alpha.endswith("2 accounts, complete")
    assert beta.split()[:2] == ["beta", "3"] and beta.endswith(" s  none")


def test_the_status_command_fails_naming_the_tenants_further_behind_than_asked(configured_tenant, other_tenant):
    ten_minutes_ago = timezone.now() - dt.timedelta(minutes=10)
    marked_accounts(configured_tenant, 2)
    DirtyAccount.objects.for_tenant(configured_tenant).update(waiting_since=ten_minutes_ago)
    marked_accounts(other_tenant, 1)

    with pytest.raises(CommandError, match=r"Further behind than 300 s: alpha\.$"):
        call_command("pipeline_status", "--fail-behind", "300", stdout=StringIO())
    call_command("pipeline_status", "alpha", "--fail-behind", "900", stdout=StringIO())


def test_the_status_command_refuses_an_unknown_tenant(tenant):
    with pytest.raises(CommandError, match="No tenant with slug 'nope'"):
        call_command("pipeline_status", "alpha", "nope", stdout=StringIO())
