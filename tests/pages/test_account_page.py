import datetime as dt
import re

import pytest
from django.utils import timezone

from csplatform.customers.models import Contact, DailyRollup, DirtyAccount
from csplatform.tenancy.timezones import tenant_today
from health.models import HealthScore
from lifecycle.models import AccountStage, Stage, StageTransition, TransitionKind

from ..factories import AccountFactory, ContactFactory, UsageEventFactory
from .conftest import place, queries_per_request, score

pytestmark = pytest.mark.django_db

BREAKDOWN_BEFORE = [
    {"source": "logins_30d", "label": "Logins in the last 30 days", "value": 40.0, "points": 100.0, "weight": 1,
     "skipped": False, "contribution": 50.0},
    {"source": "seats_used", "label": "Seats used", "value": 10.0, "points": 50.0, "weight": 1, "skipped": False,
     "contribution": 25.0},
]
BREAKDOWN_NOW = [
    {"source": "logins_30d", "label": "Logins in the last 30 days", "value": 8.0, "points": 20.0, "weight": 1,
     "skipped": False, "contribution": 10.0},
    {"source": "seats_used", "label": "Seats used", "value": 10.0, "points": 50.0, "weight": 1, "skipped": False,
     "contribution": 25.0},
    {"source": "nps", "label": "NPS answer", "value": None, "points": None, "weight": 1, "skipped": True,
     "contribution": 0.0},
]


@pytest.fixture
def account(tenant, stages):
    account = AccountFactory(tenant=tenant, name="Juniper Health")
    place(account, stages["onboarding"], days_ago=5)
    score(account, 75, history=[75] * 7, breakdown=BREAKDOWN_BEFORE)
    # Today the logins fell: the current score and today's snapshot say so.
    HealthScore.objects.for_tenant(tenant).filter(account=account).update(
        score=35, colour="red", computed_score=35, computed_colour="red", breakdown=BREAKDOWN_NOW, delta_7d=-40
    )
    account.health_snapshots.filter(day=tenant_today(tenant)).update(score=35, colour="red", breakdown=BREAKDOWN_NOW)
    return account


def test_header_shows_stage_and_health_word_number_and_trend(signed_in, account):
    html = signed_in.get(f"/t/alpha/accounts/{account.pk}/").content.decode()
    head = html[html.index('class="head-facts"') : html.index("</dl>")]
    assert "Onboarding" in head
    assert 'Red <span class="health-score">35</span>' in head
    assert "-40" in head and "points down" in head


def test_health_breakdown_lists_each_measure_and_why_the_score_changed(signed_in, account):
    html = signed_in.get(f"/t/alpha/accounts/{account.pk}/").content.decode()
    breakdown = html[html.index('<table class="breakdown">') : html.index("</table>")]
    assert "Logins in the last 30 days" in breakdown and "Seats used" in breakdown
    assert "left out" in breakdown  # NPS had no data
    assert "Health fell from 75 (green)" in html
    assert "Logins in the last 30 days fell from 40 to 8: -40 points" in html
    assert 'class="sparkline"' in html


def test_the_health_card_says_how_long_ago_the_account_was_scored(signed_in, account):
    HealthScore.objects.for_tenant(account.tenant).filter(account=account).update(
        computed_at=timezone.now() - dt.timedelta(minutes=3)
    )

    html = signed_in.get(f"/t/alpha/accounts/{account.pk}/").content.decode()

    assert "Scored <time" in html and ">3\xa0minutes ago</time>" in html


def test_timeline_shows_each_move_with_its_reason_and_who_made_it(signed_in, account, stages, alice):
    response = signed_in.post(
        f"/t/alpha/accounts/{account.pk}/move/",
        {"stage": "adoption", "reason": "Kickoff call done, admins invited"},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert html.startswith('<section id="lifecycle"')
    assert "Moved to Adoption." in html
    assert "Onboarding → Adoption" in html and "Kickoff call done, admins invited" in html and "by Alice Admin" in html
    assert 'id="account-stage" hx-swap-oob="true"' in html  # the header stage updates too
    assert AccountStage.objects.for_tenant(account.tenant).get(account=account).stage == stages["adoption"]
    page = signed_in.get(f"/t/alpha/accounts/{account.pk}/").content.decode()
    assert page.index("Onboarding → Adoption") < page.index("Initial placement")


def test_a_customer_moved_to_churned_says_on_its_page_when_and_why_it_left(signed_in, account, stages):
    Stage.objects.create(tenant=account.tenant, key="churned", name="Churned", position=9, is_terminal=True,
                         outcome="churned")
    url = f"/t/alpha/accounts/{account.pk}/"

    signed_in.post(f"{url}move/", {"stage": "churned", "reason": "Chose a competitor"})
    page = signed_in.get(url).content.decode()
    signed_in.post(f"{url}move/", {"stage": "adoption", "reason": "Won back with a smaller plan"})

    left = r'This customer left on <time datetime="[^"]+">\w{3} \d+, \d{4}</time>: Chose a competitor\.'
    assert re.search(left, page)
    assert "moving it to another stage brings it back" in page
    assert "The customer left, so this is the score it had then: no scorecard scores Churned." in page
    assert "<dt>Health when it left</dt>" in page and "<dt>7 days before</dt>" in page
    back = signed_in.get(url).content.decode()
    assert "This customer left" not in back and "the score it had then" not in back
    assert "<dt>Health</dt>" in back and "<dt>7 days</dt>" in back


def test_a_move_needs_a_reason(signed_in, account, stages):
    response = signed_in.post(
        f"/t/alpha/accounts/{account.pk}/move/", {"stage": "adoption", "reason": ""}, HTTP_HX_REQUEST="true"
    )
    assert "This field is required." in response.content.decode()
    assert not StageTransition.objects.for_tenant(account.tenant).filter(kind=TransitionKind.MANUAL).exists()


def test_timeline_explains_automatic_moves_clause_by_clause(signed_in, account, stages):
    StageTransition.objects.create(
        tenant=account.tenant, account=account, from_stage=stages["onboarding"], from_key="onboarding",
        to_stage=stages["adoption"], to_key="adoption", at=timezone.now(), kind=TransitionKind.AUTOMATIC,
        explanation={"passed": True, "clauses": [
            {"text": "metric.logins_30d >= 10", "field": "metric.logins_30d", "value": 14, "expected": ">= 10", "passed": True}
        ]},
    )
    html = signed_in.get(f"/t/alpha/accounts/{account.pk}/").content.decode()
    assert "Entry criteria met" in html and "✓ Passed" in html and "<code>metric.logins_30d &gt;= 10</code> — was 14" in html
    assert html.count("Entry criteria met") == 1


def test_override_sets_health_with_a_reason_and_can_be_removed(signed_in, account, alice):
    url = f"/t/alpha/accounts/{account.pk}/health/"
    response = signed_in.post(url, {"override-colour": "yellow", "override-reason": "Exec sponsor re-engaged"})
    assert response.status_code == 302
    health = HealthScore.objects.for_tenant(account.tenant).get(account=account)
    assert (health.colour, health.override_reason, health.override_by) == ("yellow", "Exec sponsor re-engaged", alice)
    html = signed_in.get(f"/t/alpha/accounts/{account.pk}/").content.decode()
    assert "Set by hand" in html and "Exec sponsor re-engaged" in html and "The scorecard says" in html
    signed_in.post(url, {"action": "clear"})
    assert HealthScore.objects.for_tenant(account.tenant).get(account=account).colour == "red"


def test_override_without_score_or_colour_is_refused_with_a_message(signed_in, account):
    response = signed_in.post(f"/t/alpha/accounts/{account.pk}/health/", {"override-reason": "Gut feeling"})
    assert response.status_code == 400
    assert "Give a score, a colour or both." in response.content.decode()
    assert not HealthScore.objects.for_tenant(account.tenant).get(account=account).has_override


def test_a_viewer_sees_no_actions_and_cannot_move_or_override(client, viv, account, stages):
    client.force_login(viv)
    html = client.get(f"/t/alpha/accounts/{account.pk}/").content.decode()
    assert "Move stage" not in html and "Override health" not in html
    move = client.post(f"/t/alpha/accounts/{account.pk}/move/", {"stage": "adoption", "reason": "x"})
    override = client.post(f"/t/alpha/accounts/{account.pk}/health/", {"override-colour": "green", "override-reason": "x"})
    assert (move.status_code, override.status_code) == (403, 403)
    assert "Your role in this tenant can look but not change anything." in move.content.decode()
    assert "Go to your start page" in move.content.decode()
    assert AccountStage.objects.for_tenant(account.tenant).get(account=account).stage == stages["onboarding"]
    assert not HealthScore.objects.for_tenant(account.tenant).get(account=account).has_override


def test_actions_on_another_tenants_account_are_not_found(signed_in, other_tenant):
    foreign = AccountFactory(tenant=other_tenant)
    assert signed_in.post(f"/t/alpha/accounts/{foreign.pk}/move/", {"stage": "adoption", "reason": "x"}).status_code == 404
    assert signed_in.post(f"/t/alpha/accounts/{foreign.pk}/health/", {"override-colour": "green"}).status_code == 404


def test_a_viewer_posting_to_another_tenants_account_is_told_not_found_not_forbidden(client, viv, other_tenant):
    foreign = AccountFactory(tenant=other_tenant)
    client.force_login(viv)
    assert client.post(f"/t/alpha/accounts/{foreign.pk}/move/", {"stage": "adoption", "reason": "x"}).status_code == 404


def test_usage_chart_data_is_embedded_as_json_and_drawn_by_a_static_script(signed_in, account):
    today = tenant_today(account.tenant)
    DailyRollup.objects.create(tenant=account.tenant, account=account, day=today, event="login", contact_ref=7, count=5)
    html = signed_in.get(f"/t/alpha/accounts/{account.pk}/").content.decode()
    assert '<script id="usage-chart" type="application/json">' in html
    assert '<canvas data-chart="usage-chart"' in html
    assert "/static/js/charts.js" in html
    inline = [chunk for chunk in html.split("<script")[1:] if not chunk.lstrip().startswith(("src=", 'id="usage-chart"'))]
    assert inline == []  # every script is a file or data, never inline code


def test_account_page_runs_the_same_number_of_queries_with_more_history(signed_in, account):
    url = f"/t/alpha/accounts/{account.pk}/"
    signed_in.get(url)  # warm the session and content-type caches
    before = queries_per_request(signed_in, url, account.tenant)
    today = tenant_today(account.tenant)
    for number in range(20):
        contact = ContactFactory(account=account)
        UsageEventFactory(account=account, contact=contact)
        DailyRollup.objects.create(
            tenant=account.tenant, account=account, day=today - dt.timedelta(days=number), event="login",
            contact_ref=contact.pk, count=number + 1,
        )
    assert queries_per_request(signed_in, url, account.tenant) == before


def test_account_page_shows_the_latest_50_moves_and_the_first_50_contacts(signed_in, account, stages):
    now = timezone.now()
    StageTransition.objects.bulk_create(
        StageTransition(
            tenant=account.tenant, account=account, from_stage=stages["onboarding"], from_key="onboarding",
            to_stage=stages["adoption"], to_key="adoption", at=now - dt.timedelta(minutes=number),
            kind=TransitionKind.MANUAL, reason=f"Move {number:02d}",
        )
        for number in range(60)
    )
    ContactFactory.create_batch(51, account=account)
    html = signed_in.get(f"/t/alpha/accounts/{account.pk}/").content.decode()
    assert "Move 00" in html and "Move 49" in html and "Move 50" not in html
    assert "The latest 50 moves; the API lists them all." in html
    assert "The first 50 contacts; the API lists them all." in html


def test_a_csm_makes_a_contact_the_champion_and_unsubscribes_another_from_the_account_page(
    client, bob, account, stages
):
    quinn = ContactFactory(account=account, name="Quinn Evans", role="user", title="Analyst")
    vera = ContactFactory(account=account, name="Vera Ito", role="billing")
    client.force_login(bob)
    page = client.get(f"/t/alpha/accounts/{account.pk}/").content.decode()
    assert f"/t/alpha/accounts/{account.pk}/contacts/{quinn.pk}/" in page

    promoted = client.post(
        f"/t/alpha/accounts/{account.pk}/contacts/{quinn.pk}/", {"title": "Head of Operations", "role": "champion"},
        follow=True,
    )
    client.post(f"/t/alpha/accounts/{account.pk}/contacts/{vera.pk}/", {"role": "billing", "unsubscribed": "on"})

    assert "Saved Quinn Evans." in promoted.content.decode()
    contacts = Contact.objects.for_tenant(account.tenant)
    assert contacts.filter(pk=quinn.pk, role="champion", title="Head of Operations", unsubscribed=False).exists()
    assert contacts.get(pk=vera.pk).unsubscribed
    assert DirtyAccount.objects.for_tenant(account.tenant).filter(account=account).exists()
    assert '<span class="tag">Unsubscribed</span>' in client.get(f"/t/alpha/accounts/{account.pk}/").content.decode()


def test_a_contact_edit_with_an_unknown_role_is_named_and_changes_nothing(client, bob, account, stages):
    quinn = ContactFactory(account=account, name="Quinn Evans", role="user")
    client.force_login(bob)

    response = client.post(f"/t/alpha/accounts/{account.pk}/contacts/{quinn.pk}/", {"role": "boss"}, follow=True)

    assert "Quinn Evans was not changed. Role: Select a valid choice. boss is not one of the available choices." in (
        response.content.decode()
    )
    assert Contact.objects.for_tenant(account.tenant).get(pk=quinn.pk).role == "user"


def test_contacts_are_edited_by_editors_under_their_own_account_only(client, viv, bob, account, tenant, other_tenant):
    quinn = ContactFactory(account=account, role="user")
    elsewhere = AccountFactory(tenant=tenant)
    theirs = ContactFactory(account=AccountFactory(tenant=other_tenant), role="user")
    client.force_login(viv)
    assert client.post(f"/t/alpha/accounts/{account.pk}/contacts/{quinn.pk}/", {"role": "champion"}).status_code == 403
    client.force_login(bob)
    assert client.post(f"/t/alpha/accounts/{elsewhere.pk}/contacts/{quinn.pk}/", {"role": "champion"}).status_code == 404
    assert client.post(f"/t/alpha/accounts/{account.pk}/contacts/{theirs.pk}/", {"role": "champion"}).status_code == 404
    assert Contact.objects.for_tenant(tenant).get(pk=quinn.pk).role == "user"


def test_the_account_page_says_when_no_contact_is_the_champion_until_one_is_named(client, bob, account, stages):
    quinn = ContactFactory(account=account, name="Quinn Evans", role="user")
    client.force_login(bob)
    no_champion = "No champion: nobody here has the champion role."
    assert no_champion in client.get(f"/t/alpha/accounts/{account.pk}/").content.decode()

    client.post(f"/t/alpha/accounts/{account.pk}/contacts/{quinn.pk}/", {"role": "champion"})

    assert no_champion not in client.get(f"/t/alpha/accounts/{account.pk}/").content.decode()


def test_the_champion_heads_the_contacts_even_behind_fifty_administrators(signed_in, account, stages):
    ContactFactory.create_batch(51, account=account, name="Ada Admin", role="administrator")
    ContactFactory(account=account, name="Zoe Champion", role="champion")

    html = signed_in.get(f"/t/alpha/accounts/{account.pk}/").content.decode()

    assert html.index("Zoe Champion") < html.index("Ada Admin")
    assert "No champion" not in html


def test_a_csm_removes_a_contact_who_left_and_the_activity_keeps_what_they_had(client, bob, account, tenant):
    quinn = ContactFactory(account=account, name="Quinn Evans", email="quinn@acme.example", title="Analyst",
                           role="champion")
    client.force_login(bob)

    response = client.post(f"/t/alpha/accounts/{account.pk}/contacts/{quinn.pk}/remove/", follow=True)

    assert "Removed Quinn Evans. The account&#x27;s activity keeps what it had." in response.content.decode()
    assert not Contact.objects.for_tenant(tenant).filter(pk=quinn.pk).exists()
    assert DirtyAccount.objects.for_tenant(tenant).filter(account=account).exists()
    activity = client.get(f"/t/alpha/accounts/{account.pk}/activity/?kind=contact").content.decode()
    assert "Removed the contact Quinn Evans" in activity
    assert "Name: Quinn Evans · Email: quinn@acme.example · Title: Analyst · Role: Champion" in activity


def test_contacts_are_removed_by_editors_under_their_own_account_only(client, viv, bob, account, tenant, other_tenant):
    quinn = ContactFactory(account=account)
    elsewhere = AccountFactory(tenant=tenant)
    theirs = ContactFactory(account=AccountFactory(tenant=other_tenant))
    client.force_login(viv)
    assert client.post(f"/t/alpha/accounts/{account.pk}/contacts/{quinn.pk}/remove/").status_code == 403
    client.force_login(bob)
    assert client.get(f"/t/alpha/accounts/{account.pk}/contacts/{quinn.pk}/remove/").status_code == 405
    assert client.post(f"/t/alpha/accounts/{elsewhere.pk}/contacts/{quinn.pk}/remove/").status_code == 404
    assert client.post(f"/t/alpha/accounts/{account.pk}/contacts/{theirs.pk}/remove/").status_code == 404
    assert Contact.objects.for_tenant(tenant).filter(pk=quinn.pk).exists()
    assert Contact.objects.for_tenant(other_tenant).filter(pk=theirs.pk).exists()


def test_a_csm_adds_a_person_they_met_keyed_by_their_email(client, bob, account, tenant):
    client.force_login(bob)
    contact = {"contact-name": "Rosa Diaz", "contact-email": " Rosa.Diaz@Juniper.example ", "contact-title": "CFO",
               "contact-role": "executive"}

    response = client.post(f"/t/alpha/accounts/{account.pk}/contacts/add/", contact, follow=True)

    assert "Added Rosa Diaz to the contacts." in response.content.decode()
    rosa = Contact.objects.for_tenant(tenant).get(name="Rosa Diaz")
    assert (rosa.account, rosa.email, rosa.external_id, rosa.title, rosa.role) == (
        account, "rosa.diaz@juniper.example", "rosa.diaz@juniper.example", "CFO", "executive"
    )
    assert DirtyAccount.objects.for_tenant(tenant).filter(account=account).exists()


def test_a_contact_added_with_a_known_email_or_no_name_comes_back_with_the_reasons_and_what_was_typed(
    client, bob, account, tenant
):
    ContactFactory(account=AccountFactory(tenant=tenant, name="Bolt Labs"), name="Quinn Evans", email="q@bolt.example")
    client.force_login(bob)

    response = client.post(f"/t/alpha/accounts/{account.pk}/contacts/add/",
                           {"contact-name": "", "contact-email": "Q@bolt.example", "contact-title": "Head of IT",
                            "contact-role": "champion"})

    html = response.content.decode()
    assert response.status_code == 400
    assert "Quinn Evans at Bolt Labs already has this email." in html and "This field is required." in html
    assert 'value="Head of IT"' in html and '<option value="champion" selected>' in html
    too_long = client.post(f"/t/alpha/accounts/{account.pk}/contacts/add/",
                           {"contact-name": "Long", "contact-email": f"{'a' * 200}@x.example", "contact-role": "user"})
    assert too_long.status_code == 400 and "Use an email of at most 200 characters." in too_long.content.decode()
    assert Contact.objects.for_tenant(tenant).count() == 1


def test_contacts_are_added_by_editors_to_their_own_tenants_accounts_only(client, viv, bob, account, other_tenant):
    contact = {"contact-name": "Rosa Diaz", "contact-email": "rosa@juniper.example", "contact-role": "user"}
    client.force_login(viv)
    assert client.post(f"/t/alpha/accounts/{account.pk}/contacts/add/", contact).status_code == 403
    assert "Add a contact" not in client.get(f"/t/alpha/accounts/{account.pk}/").content.decode()
    client.force_login(bob)
    theirs = AccountFactory(tenant=other_tenant)
    assert client.post(f"/t/alpha/accounts/{theirs.pk}/contacts/add/", contact).status_code == 404
    assert not Contact.objects.for_tenant(account.tenant).exists()
    assert not Contact.objects.for_tenant(other_tenant).exists()
