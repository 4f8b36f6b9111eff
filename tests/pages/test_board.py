import datetime as dt

import pytest
from django.utils import timezone

from csplatform.customers.models import Account
from lifecycle.models import AccountStage, StageTransition, TransitionKind

from ..factories import AccountFactory
from .conftest import make_accounts, place, queries_per_request, score

pytestmark = pytest.mark.django_db


def place_new(tenant, stage, name):
    account = AccountFactory(tenant=tenant, name=name)
    place(account, stage)
    return account


def column(html, key):
    start = html.index(f'aria-labelledby="stage-{key}"')
    return html[start : html.index("</section>", start)]


def test_board_has_a_column_per_stage_in_order_with_cards_counts_and_health(signed_in, tenant, stages):
    for name, stage, value in (("Ada Corp", "onboarding", 25), ("Bolt Inc", "onboarding", 88), ("Cyan Ltd", "renewal", 60)):
        account = AccountFactory(tenant=tenant, name=name)
        place(account, stages[stage], days_ago=3)
        score(account, value)
    html = signed_in.get("/t/alpha/board/").content.decode()
    assert html.index("stage-onboarding") < html.index("stage-adoption") < html.index("stage-renewal")
    onboarding = column(html, "onboarding")
    assert '<span class="count">2</span>' in onboarding
    assert onboarding.index("Ada Corp") < onboarding.index("Bolt Inc")  # worst health first
    assert 'Red <span class="health-score">25</span>' in onboarding
    assert "3 days" in onboarding
    assert "No accounts in this stage." in column(html, "adoption")


def test_board_shows_moves_this_week_and_the_median_stay(signed_in, tenant, stages):
    now = timezone.now()
    for days in (2, 4):
        account = AccountFactory(tenant=tenant)
        place(account, stages["onboarding"], days_ago=days + 10)
        StageTransition.objects.create(
            tenant=tenant, account=account, from_stage=stages["onboarding"], from_key="onboarding",
            to_stage=stages["adoption"], to_key="adoption", at=now - dt.timedelta(days=days), kind=TransitionKind.AUTOMATIC,
        )
        AccountStage.objects.for_tenant(tenant).filter(account=account).update(stage=stages["adoption"])
    html = signed_in.get("/t/alpha/board/").content.decode()
    assert "<strong>10.0 days</strong>" in column(html, "onboarding")
    assert "<strong>0</strong> in, <strong>2</strong> out" in column(html, "onboarding")
    assert "<strong>2</strong> in, <strong>0</strong> out" in column(html, "adoption")


def test_moving_a_card_records_the_transition_with_its_reason_and_returns_the_board(signed_in, tenant, stages, alice):
    account = AccountFactory(tenant=tenant, name="Mover")
    place(account, stages["onboarding"])
    response = signed_in.post(
        "/t/alpha/board/move/",
        {"account": account.pk, "stage": "adoption", "reason": "Kickoff call done"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith('<div id="board"') and "Moved Mover to Adoption." in html
    assert "Mover" in column(html, "adoption")
    move = StageTransition.objects.for_tenant(tenant).filter(account=account, kind=TransitionKind.MANUAL).get()
    assert (move.from_key, move.to_key, move.reason, move.by_user) == ("onboarding", "adoption", "Kickoff call done", alice)


def test_a_move_without_a_reason_is_refused_on_its_card(signed_in, tenant, stages):
    account = AccountFactory(tenant=tenant, name="Stays Put")
    place(account, stages["onboarding"])
    response = signed_in.post(
        "/t/alpha/board/move/", {"account": account.pk, "stage": "adoption", "reason": "  "}, HTTP_HX_REQUEST="true"
    )
    assert "This field is required." in column(response.content.decode(), "onboarding")
    assert AccountStage.objects.for_tenant(tenant).get(account=account).stage == stages["onboarding"]


def test_a_card_offers_every_other_stage_and_a_refused_move_keeps_the_stage_chosen(signed_in, tenant, stages):
    account = AccountFactory(tenant=tenant, name="Stays Put")
    place(account, stages["onboarding"])
    offered = f'<select name="stage" id="move-{account.pk}-stage">'

    def options(html):
        card = column(html, "onboarding")
        return card[card.index(offered) : card.index("</select>", card.index(offered))]

    board = options(signed_in.get("/t/alpha/board/").content.decode())
    assert '<option value="adoption">Adoption</option>' in board and '<option value="renewal">' in board
    assert 'value="onboarding"' not in board and "selected" not in board
    refused = signed_in.post(
        "/t/alpha/board/move/", {"account": account.pk, "stage": "renewal", "reason": ""}, HTTP_HX_REQUEST="true"
    )
    assert '<option value="renewal" selected>' in options(refused.content.decode())


def test_a_plain_form_move_redirects_back_to_the_board(signed_in, tenant, stages):
    account = AccountFactory(tenant=tenant)
    place(account, stages["onboarding"])
    response = signed_in.post("/t/alpha/board/move/", {"account": account.pk, "stage": "renewal", "reason": "Signed"})
    assert response.status_code == 302 and response.url == "/t/alpha/board/"
    assert AccountStage.objects.for_tenant(tenant).get(account=account).stage == stages["renewal"]


def test_a_viewer_sees_the_board_without_move_forms_and_cannot_post_a_move(client, viv, tenant, stages):
    account = AccountFactory(tenant=tenant, name="Watched")
    place(account, stages["onboarding"])
    client.force_login(viv)
    html = client.get("/t/alpha/board/").content.decode()
    assert "Watched" in html and "/board/move/" not in html
    response = client.post("/t/alpha/board/move/", {"account": account.pk, "stage": "adoption", "reason": "Sneaky"})
    assert response.status_code == 403
    assert AccountStage.objects.for_tenant(tenant).get(account=account).stage == stages["onboarding"]


def test_moving_another_tenants_account_is_refused_as_unknown(signed_in, tenant, other_tenant, stages):
    foreign = AccountFactory(tenant=other_tenant)
    response = signed_in.post(
        "/t/alpha/board/move/", {"account": foreign.pk, "stage": "adoption", "reason": "Mine now"}, HTTP_HX_REQUEST="true"
    )
    assert "Select a valid choice" in response.content.decode()
    assert not StageTransition.objects.dangerously_all_tenants().filter(account=foreign).exists()


def test_without_stages_the_board_offers_a_template(signed_in, tenant):
    html = signed_in.get("/t/alpha/board/").content.decode()
    assert "No lifecycle stages yet" in html and 'href="/t/alpha/settings/stages/"' in html


def test_board_of_a_tenant_you_do_not_belong_to_is_not_found(client, charlie, tenant, stages):
    client.force_login(charlie)
    assert client.get("/t/alpha/board/").status_code == 404


def test_board_runs_the_same_number_of_queries_for_few_and_many_accounts(signed_in, tenant, stages):
    make_accounts(tenant, stages, 3)
    signed_in.get("/t/alpha/board/")  # warm the session and content-type caches
    few = queries_per_request(signed_in, "/t/alpha/board/", tenant)
    make_accounts(tenant, stages, 90, prefix="More")
    assert queries_per_request(signed_in, "/t/alpha/board/", tenant) == few
    assert "19 more in the portfolio" in signed_in.get("/t/alpha/board/").content.decode()  # 31 per stage, 12 cards


def test_board_cards_are_the_worst_health_first_with_unscored_accounts_last(signed_in, tenant, stages):
    for number in range(14):
        score(place_new(tenant, stages["onboarding"], f"Scored {number:02d}"), 10 + number)
    place_new(tenant, stages["adoption"], "Not Scored Yet")
    score(place_new(tenant, stages["adoption"], "Scored Low"), 5)
    html = signed_in.get("/t/alpha/board/").content.decode()
    onboarding = column(html, "onboarding")
    assert "Scored 00" in onboarding and "Scored 11" in onboarding and "Scored 12" not in onboarding
    assert "2 more in the portfolio" in onboarding
    adoption = column(html, "adoption")
    assert adoption.index("Scored Low") < adoption.index("Not Scored Yet")


def test_board_figures_are_kept_between_requests_until_a_move_forgets_them(signed_in, tenant, stages):
    mover = place_new(tenant, stages["onboarding"], "Mover")
    signed_in.get("/t/alpha/board/")
    place_new(tenant, stages["onboarding"], "Arrived Meanwhile")  # as the pipeline would, outside the pages
    assert "Arrived Meanwhile" not in signed_in.get("/t/alpha/board/").content.decode()
    signed_in.post("/t/alpha/board/move/", {"account": mover.pk, "stage": "adoption", "reason": "Kickoff call done"})
    html = signed_in.get("/t/alpha/board/").content.decode()
    assert "Arrived Meanwhile" in column(html, "onboarding") and "Mover" in column(html, "adoption")


def test_my_accounts_shows_only_my_cards_counts_and_moves_and_a_move_keeps_the_scope(
    signed_in, tenant, stages, alice, bob
):
    mine = [AccountFactory(tenant=tenant, name=f"Mine {n}", owner=alice) for n in range(2)]
    theirs = AccountFactory(tenant=tenant, name="Bob's", owner=bob)
    for account in (*mine, theirs):
        place(account, stages["onboarding"])
    AccountFactory.create_batch(13, tenant=tenant, owner=alice)  # not in a stage: no card

    html = signed_in.get("/t/alpha/board/?scope=mine").content.decode()
    onboarding = column(html, "onboarding")
    assert "Mine 0" in onboarding and "Mine 1" in onboarding and "Bob&#x27;s" not in onboarding
    assert '<span class="count">2</span>' in onboarding
    assert '?scope=mine" aria-current="true">My accounts</a>' in html
    assert "Bob&#x27;s" in column(signed_in.get("/t/alpha/board/").content.decode(), "onboarding")

    response = signed_in.post(
        "/t/alpha/board/move/",
        {"account": mine[0].pk, "stage": "adoption", "reason": "Live", "scope": "mine"},
        HTTP_HX_REQUEST="true",
    )
    moved = response.content.decode()
    assert "Mine 0" in column(moved, "adoption") and "Bob&#x27;s" not in moved
    assert 'name="scope" value="mine"' in moved
    assert "This week: <strong>1</strong> in" in column(moved, "adoption")
    plain = signed_in.post(
        "/t/alpha/board/move/", {"account": mine[1].pk, "stage": "adoption", "reason": "Live", "scope": "mine"}
    )
    assert plain.status_code == 302 and plain["Location"] == "/t/alpha/board/?scope=mine"


def test_my_accounts_without_any_says_so_and_links_every_account(client, bob, tenant, stages):
    place(AccountFactory(tenant=tenant, name="Someone Else's"), stages["onboarding"])
    client.force_login(bob)

    html = client.get("/t/alpha/board/?scope=mine").content.decode()

    assert "No accounts are assigned to you" in html and "Someone Else" not in html


def test_my_accounts_runs_the_same_number_of_queries_for_few_and_many_accounts(signed_in, tenant, stages, alice):
    make_accounts(tenant, stages, 3)
    Account.objects.for_tenant(tenant).update(owner=alice)
    signed_in.get("/t/alpha/board/?scope=mine")
    few = queries_per_request(signed_in, "/t/alpha/board/?scope=mine", tenant)
    make_accounts(tenant, stages, 90, prefix="More")
    Account.objects.for_tenant(tenant).update(owner=alice)

    assert queries_per_request(signed_in, "/t/alpha/board/?scope=mine", tenant) == few
    assert "scope=mine\">19 more in the portfolio" in signed_in.get("/t/alpha/board/?scope=mine").content.decode()
