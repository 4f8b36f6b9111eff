import re
from html import unescape

import pytest

from csplatform.customers.models import SavedView
from csplatform.customers.services import saved_view_save
from lifecycle.models import Stage
from playbooks.models import Run
from playbooks.services import playbook_templates_install, run_start

from ..factories import AccountFactory, ContactFactory
from .conftest import make_accounts, place, queries_per_request, score

pytestmark = pytest.mark.django_db


def row_names(html):
    table = html[html.index('<table class="accounts">') : html.index("</table>")]
    return [unescape(name) for name in re.findall(r'<th scope="row"><a href="[^"]+">([^<]+)</a>', table)]


def row_of(html, name):
    start = html.index(f">{name}</a>")
    return html[start : html.index("</tr>", start)]


def test_row_shows_stage_days_in_stage_health_word_and_number_trend_and_delta(signed_in, tenant, stages):
    account = AccountFactory(tenant=tenant, name="Granite Labs", mrr=12500)
    place(account, stages["adoption"], days_ago=4)
    score(account, 35, history=[80, 70, 60, 50], delta_30d=-45)
    row = row_of(signed_in.get("/t/alpha/").content.decode(), "Granite Labs")
    assert "Adoption" in row
    assert '<td class="num">4</td>' in row
    assert "Red <span class=\"health-score\">35</span>" in row
    assert 'class="sparkline"' in row and "Health from 80 on" in row
    assert "-45" in row and "points down" in row
    assert "12,500" in row


def test_row_of_a_new_account_says_no_stage_not_scored_and_dashes_for_trend_and_delta(signed_in, tenant, stages):
    AccountFactory(tenant=tenant, name="Fresh Start")
    risen = AccountFactory(tenant=tenant, name="Rising")
    score(risen, 75, delta_30d=12.5)
    html = signed_in.get("/t/alpha/").content.decode()
    fresh = row_of(html, "Fresh Start")
    assert '<span class="muted">No stage yet</span>' in fresh
    assert "Not scored</span>" in fresh
    assert fresh.count('<span class="muted">—</span>') == 2
    assert '<span aria-hidden="true">▲</span> +12.5<span class="visually-hidden"> points up</span>' in row_of(
        html, "Rising"
    )


def test_summary_counts_accounts_per_stage_and_colour_and_links_to_the_filter(signed_in, tenant, stages):
    for name, stage, value in (("A", "onboarding", 90), ("B", "onboarding", 20), ("C", "renewal", 55)):
        account = AccountFactory(tenant=tenant, name=name)
        place(account, stages[stage])
        score(account, value)
    AccountFactory(tenant=tenant, name="Unscored")
    html = signed_in.get("/t/alpha/").content.decode()
    summary = html[html.index('aria-label="Portfolio at a glance"') : html.index("</section>")]
    assert re.search(r'href="\?stage=onboarding".*?Onboarding</span> <strong>2</strong>', summary, re.S)
    assert re.search(r'href="\?health=red".*?Red</span> <strong>1</strong>', summary, re.S)
    assert re.search(r'href="\?health=unscored".*?Not scored</span> <strong>1</strong>', summary, re.S)


def test_health_counts_and_filters_leave_out_the_customers_who_left(signed_in, tenant, stages):
    churned = Stage.objects.create(tenant=tenant, key="churned", name="Churned", position=9, is_terminal=True)
    for name, stage, value in (("Red On", stages["onboarding"], 20), ("Gone", churned, 10)):
        account = AccountFactory(tenant=tenant, name=name)
        place(account, stage)
        score(account, value)

    html = signed_in.get("/t/alpha/").content.decode()

    summary = html[html.index('aria-label="Portfolio at a glance"') : html.index("</section>")]
    assert re.search(r'href="\?stage=churned".*?Churned</span> <strong>1</strong>', summary, re.S)
    assert re.search(r'href="\?health=red".*?Red</span> <strong>1</strong>', summary, re.S)
    assert 'Health counts current customers: <a href="?customers=left">1 who left</a> is not counted.' in summary
    assert row_names(html) == ["Gone", "Red On"]
    assert row_names(signed_in.get("/t/alpha/?health=red").content.decode()) == ["Red On"]


def test_the_customers_filter_lists_current_customers_or_those_who_left(signed_in, tenant, stages):
    churned = Stage.objects.create(tenant=tenant, key="churned", name="Churned", position=9, is_terminal=True)
    place(AccountFactory(tenant=tenant, name="Staying"), stages["onboarding"])
    place(AccountFactory(tenant=tenant, name="Gone"), churned)
    AccountFactory(tenant=tenant, name="Fresh")

    assert row_names(signed_in.get("/t/alpha/?customers=current").content.decode()) == ["Fresh", "Staying"]
    left = signed_in.get("/t/alpha/?customers=left").content.decode()
    assert row_names(left) == ["Gone"]
    assert '<option value="left" selected>Customers who left</option>' in left and "Clear filters" in left


def test_stage_and_health_filters_narrow_the_list_and_live_in_the_url(signed_in, tenant, stages):
    for name, stage, value in (("Green On", "onboarding", 90), ("Red On", "onboarding", 20), ("Red Renew", "renewal", 10)):
        account = AccountFactory(tenant=tenant, name=name)
        place(account, stages[stage])
        score(account, value)
    AccountFactory(tenant=tenant, name="Fresh")
    assert row_names(signed_in.get("/t/alpha/?stage=onboarding").content.decode()) == ["Green On", "Red On"]
    assert row_names(signed_in.get("/t/alpha/?health=red").content.decode()) == ["Red On", "Red Renew"]
    response = signed_in.get("/t/alpha/?stage=onboarding&health=red")
    assert row_names(response.content.decode()) == ["Red On"]
    assert row_names(signed_in.get("/t/alpha/?health=unscored").content.decode()) == ["Fresh"]
    html = response.content.decode()
    assert '<option value="onboarding" selected>Onboarding</option>' in html
    assert 'href="?stage=onboarding&amp;health=red&amp;sort=name"' in html  # sorting keeps the filters


def test_sorting_by_health_puts_unscored_accounts_last(signed_in, tenant, stages):
    for name, value in (("Mid", 50), ("Low", 10), ("High", 95)):
        account = AccountFactory(tenant=tenant, name=name)
        score(account, value)
    AccountFactory(tenant=tenant, name="None")
    assert row_names(signed_in.get("/t/alpha/?sort=health").content.decode()) == ["Low", "Mid", "High", "None"]
    assert row_names(signed_in.get("/t/alpha/?sort=-health").content.decode()) == ["High", "Mid", "Low", "None"]


def test_a_stage_of_another_tenant_is_not_a_valid_filter(signed_in, tenant, other_tenant, stages):
    Stage.objects.create(tenant=other_tenant, key="secret", name="Secret Stage", position=1)
    html = signed_in.get("/t/alpha/?stage=secret").content.decode()
    assert "Select a valid choice" in html
    assert "Secret Stage" not in html


def test_without_stages_the_portfolio_points_to_the_stage_templates(signed_in, tenant):
    AccountFactory(tenant=tenant)
    html = signed_in.get("/t/alpha/").content.decode()
    assert "No lifecycle stages yet" in html
    assert 'href="/t/alpha/settings/stages/"' in html


@pytest.mark.parametrize("url", ["/t/alpha/", "/t/alpha/?stage=adoption&health=&sort=-days", "/t/alpha/?sort=activity"])
def test_portfolio_runs_the_same_number_of_queries_for_5_and_50_accounts(signed_in, tenant, stages, url):
    make_accounts(tenant, stages, 5)
    signed_in.get(url)  # warm the session and content-type caches
    few = queries_per_request(signed_in, url, tenant)
    make_accounts(tenant, stages, 45, prefix="More")
    assert queries_per_request(signed_in, url, tenant) == few
    assert queries_per_request(signed_in, url + "&page=2" if "?" in url else url + "?page=2", tenant) == few


def test_every_page_finds_an_account_by_name_from_the_navigation_into_the_portfolio(signed_in, tenant, stages):
    AccountFactory(tenant=tenant, name="Granite Labs")
    AccountFactory(tenant=tenant, name="Maple Foods")
    board = signed_in.get("/t/alpha/board/").content.decode()
    assert '<form method="get" action="/t/alpha/" role="search" class="nav-search">' in board

    found = signed_in.get("/t/alpha/?q=granite").content.decode()

    assert row_names(found) == ["Granite Labs"]
    assert 'id="nav-search" name="q" placeholder="Find an account" value="granite"' in found


def test_the_search_finds_an_account_by_the_name_or_email_of_one_of_its_contacts(signed_in, tenant, other_tenant):
    granite = AccountFactory(tenant=tenant, name="Granite Labs")
    ContactFactory(account=granite, name="Wes Okafor", email="wes@granite.example")
    ContactFactory(account=granite, name="Ines Lopez", email="ines@granite.example")
    ContactFactory(account=AccountFactory(tenant=tenant, name="Maple Foods"), name="Ana Wesley", email="ana@maple.example")
    ContactFactory(account=AccountFactory(tenant=other_tenant, name="Theirs"), name="Wes Twin", email="wes@theirs.example")

    assert row_names(signed_in.get("/t/alpha/?q=okafor").content.decode()) == ["Granite Labs"]
    assert row_names(signed_in.get("/t/alpha/?q=WES").content.decode()) == ["Granite Labs", "Maple Foods"]
    assert row_names(signed_in.get("/t/alpha/?q=ines@granite").content.decode()) == ["Granite Labs"]


def test_a_csm_starts_a_playbook_for_the_ticked_accounts_and_is_told_of_those_already_in_it(
    client, bob, tenant, stages
):
    (playbook,) = playbook_templates_install(tenant=tenant, keys=["onboarding_welcome"])
    first, second, busy = (AccountFactory(tenant=tenant, name=name) for name in ("Ada", "Bolt", "Cyan"))
    run_start(tenant=tenant, playbook=playbook, account=busy)
    client.force_login(bob)
    page = client.get("/t/alpha/").content.decode()
    assert 'formaction="/t/alpha/accounts/playbooks/start/">Start playbook</button>' in page
    assert "Give the selected accounts to" not in page  # admins hand out accounts

    response = client.post(
        "/t/alpha/accounts/playbooks/start/",
        {"playbook": playbook.pk, "account": [first.pk, second.pk, busy.pk], "next": "/t/alpha/?stage=onboarding"},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == "/t/alpha/?stage=onboarding"
    assert f"Started {playbook.name} for 2 of the 3 accounts selected;" in response.content.decode()
    runs = Run.objects.for_tenant(tenant).filter(playbook=playbook)
    assert sorted(runs.values_list("account__name", flat=True)) == ["Ada", "Bolt", "Cyan"]
    assert runs.get(account=first).started_by == bob


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"account": ["1"]}, "Choose a playbook to start."),
        ({"playbook": "999999", "account": ["1"]}, "Choose one of this team&#x27;s playbooks."),
        ({"playbook": "PLAYBOOK"}, "Select the accounts first."),
    ],
)
def test_a_playbook_start_without_a_playbook_or_accounts_is_named_and_starts_nothing(
    client, bob, tenant, stages, data, message
):
    (playbook,) = playbook_templates_install(tenant=tenant, keys=["onboarding_welcome"])
    client.force_login(bob)
    data = {name: str(playbook.pk) if value == "PLAYBOOK" else value for name, value in data.items()}

    response = client.post("/t/alpha/accounts/playbooks/start/", data, follow=True)

    assert message in response.content.decode()
    assert not Run.objects.for_tenant(tenant).exists()


def test_ticked_accounts_of_another_tenant_start_nothing_and_viewers_are_refused(
    client, bob, viv, tenant, other_tenant, stages
):
    (playbook,) = playbook_templates_install(tenant=tenant, keys=["onboarding_welcome"])
    theirs = AccountFactory(tenant=other_tenant)
    client.force_login(bob)
    start = "/t/alpha/accounts/playbooks/start/"
    response = client.post(start, {"playbook": playbook.pk, "account": [theirs.pk]}, follow=True)
    assert f"Started {playbook.name} for 0 of the 1 accounts selected;" in response.content.decode()
    client.force_login(viv)
    ours = AccountFactory(tenant=tenant)
    assert client.post(start, {"playbook": playbook.pk, "account": [ours.pk]}).status_code == 403
    assert not Run.objects.dangerously_all_tenants().exists()


def test_a_member_saves_the_filtered_sorted_portfolio_as_a_view_and_opens_it_again(client, bob, tenant, stages):
    client.force_login(bob)
    page = client.get("/t/alpha/?health=red&sort=-mrr&page=2").content.decode()
    assert '<input type="hidden" name="query" value="health=red&amp;sort=-mrr">' in page

    saved = client.post("/t/alpha/views/", {"name": "Red by MRR", "query": "health=red&sort=-mrr&page=2"}, follow=True)

    assert saved.redirect_chain[-1][0] == "/t/alpha/?health=red&sort=-mrr"
    html = saved.content.decode()
    assert "Saved the view Red by MRR." in html
    assert '<a class="chip" href="?health=red&amp;sort=-mrr" aria-current="true">Red by MRR</a>' in html
    updated = client.post("/t/alpha/views/", {"name": "Red by MRR", "query": "health=red"}, follow=True)
    assert "Updated the view Red by MRR." in updated.content.decode()
    assert list(SavedView.objects.for_tenant(tenant).values_list("name", "query")) == [("Red by MRR", "health=red")]


def test_saved_views_are_each_members_own_and_deleted_by_them_only(client, alice, bob, tenant, stages):
    mine = saved_view_save(tenant=tenant, user=bob, name="Mine", query="scope=mine")[0]
    alices = saved_view_save(tenant=tenant, user=alice, name="Alice's", query="health=red")[0]
    client.force_login(bob)

    html = client.get("/t/alpha/").content.decode()
    refused = client.post(f"/t/alpha/views/{alices.pk}/delete/")
    deleted = client.post(f"/t/alpha/views/{mine.pk}/delete/", follow=True)

    assert ">Mine</a>" in html and "Alice" not in html.split('aria-label="My saved views"')[1].split("</ul>")[0]
    assert refused.status_code == 404
    assert "Deleted the view Mine." in deleted.content.decode()
    assert list(SavedView.objects.for_tenant(tenant).values_list("name", flat=True)) == ["Alice's"]


def test_a_view_without_a_name_or_past_the_limit_is_refused_with_the_reason(client, bob, tenant, stages):
    client.force_login(bob)
    nameless = client.post("/t/alpha/views/", {"name": "", "query": "health=red"}, follow=True).content.decode()
    for number in range(SavedView.MAX_PER_MEMBER):
        saved_view_save(tenant=tenant, user=bob, name=f"View {number}", query="health=red")
    one_more = client.post("/t/alpha/views/", {"name": "One more", "query": "health=red"}, follow=True)

    assert "Name the view." in nameless
    assert f"Keep at most {SavedView.MAX_PER_MEMBER} views: delete one first." in one_more.content.decode()
    assert SavedView.objects.for_tenant(tenant).count() == SavedView.MAX_PER_MEMBER
