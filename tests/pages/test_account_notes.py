import re
import uuid

import pytest

from alerts.models import Channel, Notification
from csplatform.customers.models import AccountNote
from csplatform.customers.services import note_add

from ..factories import AccountFactory
from .conftest import queries_per_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(tenant):
    return AccountFactory(tenant=tenant, name="Juniper Health")


def page_url(account, suffix=""):
    return f"/t/alpha/accounts/{account.pk}/{suffix}"


def add(client, account, body, **extra):
    return client.post(page_url(account, "notes/"), {"body": body, "token": str(uuid.uuid4()), **extra})


def notes_of(account):
    return list(AccountNote.objects.for_tenant(account.tenant).filter(account=account).values_list("body", flat=True))


def html(response):
    return response.content.decode()


def test_a_csm_adds_a_note_from_the_account_page_and_sees_it_there(client, bob, account):
    client.force_login(bob)
    response = add(client, account, "Call with Dana:\nrenewal is on <track>", next=page_url(account) + "#notes")

    assert response.status_code == 302
    assert response["Location"] == page_url(account) + "#notes"
    note = AccountNote.objects.for_tenant(account.tenant).get(account=account)
    assert (note.author, note.pinned) == (bob, False)
    page = html(client.get(page_url(account)))
    assert "Call with Dana:<br>renewal is on &lt;track&gt;" in page
    assert "Bob CSM" in page


def test_submitting_the_same_form_twice_adds_the_note_once(client, bob, account):
    client.force_login(bob)
    form = {"body": "Kick-off done", "token": str(uuid.uuid4())}

    client.post(page_url(account, "notes/"), form)
    client.post(page_url(account, "notes/"), form)

    assert notes_of(account) == ["Kick-off done"]


def test_an_empty_note_is_refused_with_the_reason_and_keeps_the_pin(client, bob, account):
    client.force_login(bob)
    response = add(client, account, "   ", pinned="on")

    assert response.status_code == 400
    assert "Write the note first." in html(response)
    assert re.search(r'name="pinned"[^>]* checked', html(response))
    assert notes_of(account) == []


def test_a_note_too_long_comes_back_with_its_text(client, bob, account):
    client.force_login(bob)
    body = "x" * (AccountNote.MAX_LENGTH + 1)

    response = add(client, account, body)

    assert response.status_code == 400
    assert body in html(response) and "at most 10000 characters" in html(response)


def test_pinned_notes_come_first_then_the_newest(client, alice, account):
    client.force_login(alice)
    for body, pinned in (("First", False), ("Champion is Dana", True), ("Latest", False)):
        note_add(tenant=account.tenant, account=account, author=alice, body=body, pinned=pinned)

    page = html(client.get(page_url(account)))

    assert page.index("Champion is Dana") < page.index("Latest") < page.index("First")


def test_the_account_page_shows_the_latest_five_and_links_to_every_note(client, alice, account):
    client.force_login(alice)
    for number in range(7):
        note_add(tenant=account.tenant, account=account, author=alice, body=f"Note number {number}")

    page = html(client.get(page_url(account)))
    all_notes = html(client.get(page_url(account, "notes/")))

    assert "Note number 6" in page and "Note number 1" not in page
    assert "All 7 notes" in page
    assert all(f"Note number {number}" in all_notes for number in range(7))


def test_the_account_page_runs_the_same_queries_with_six_notes_or_sixty(client, alice, account):
    client.force_login(alice)
    for number in range(6):
        note_add(tenant=account.tenant, account=account, author=alice, body=f"Note {number}")
    client.get(page_url(account))
    before = queries_per_request(client, page_url(account), account.tenant)

    for number in range(54):
        note_add(tenant=account.tenant, account=account, author=alice, body=f"More {number}")

    assert queries_per_request(client, page_url(account), account.tenant) == before


def test_the_author_edits_and_pins_a_note(client, bob, account):
    note = note_add(tenant=account.tenant, account=account, author=bob, body="Draft")
    client.force_login(bob)

    assert client.get(page_url(account, f"notes/{note.pk}/")).status_code == 200
    response = client.post(page_url(account, f"notes/{note.pk}/"), {"body": "Renewal agreed", "pinned": "on"})

    assert response.status_code == 302
    note.refresh_from_db()
    assert (note.body, note.pinned) == ("Renewal agreed", True)


def test_an_edit_that_empties_the_note_is_refused_and_changes_nothing(client, bob, account):
    note = note_add(tenant=account.tenant, account=account, author=bob, body="Keep me")
    client.force_login(bob)

    response = client.post(page_url(account, f"notes/{note.pk}/"), {"body": ""})

    assert response.status_code == 400
    assert "Write the note first." in html(response)
    assert notes_of(account) == ["Keep me"]


def test_a_csm_cannot_change_or_delete_anothers_note_but_an_admin_can(client, alice, bob, account):
    note = note_add(tenant=account.tenant, account=account, author=alice, body="Admin's note")
    client.force_login(bob)

    assert "Edit<span" not in html(client.get(page_url(account)))
    assert client.post(page_url(account, f"notes/{note.pk}/"), {"body": "Changed"}).status_code == 403
    assert client.post(page_url(account, f"notes/{note.pk}/delete/")).status_code == 403
    assert notes_of(account) == ["Admin's note"]

    theirs = note_add(tenant=account.tenant, account=account, author=bob, body="CSM's note")
    client.force_login(alice)
    assert client.post(page_url(account, f"notes/{theirs.pk}/delete/")).status_code == 302
    assert notes_of(account) == ["Admin's note"]


def test_a_viewer_reads_notes_but_cannot_add_one(client, viv, alice, account):
    note_add(tenant=account.tenant, account=account, author=alice, body="Visible to all")
    client.force_login(viv)

    page = html(client.get(page_url(account)))

    assert "Visible to all" in page and "Add note" not in page
    assert add(client, account, "Sneaky").status_code == 403
    assert notes_of(account) == ["Visible to all"]


def test_a_note_of_another_account_is_not_found_under_this_one(client, alice, account, tenant):
    other = AccountFactory(tenant=tenant)
    note = note_add(tenant=tenant, account=other, author=alice, body="Elsewhere")
    client.force_login(alice)

    assert client.get(page_url(account, f"notes/{note.pk}/")).status_code == 404
    assert client.post(page_url(account, f"notes/{note.pk}/delete/")).status_code == 404


def test_a_note_whose_author_left_still_reads_and_only_admins_change_it(client, alice, bob, account):
    note = note_add(tenant=account.tenant, account=account, author=None, body="From someone gone")
    client.force_login(bob)

    assert "A former member" in html(client.get(page_url(account)))
    refused = client.post(page_url(account, f"notes/{note.pk}/"), {"body": "x"})
    assert refused.status_code == 403
    assert "Only the note&#x27;s author or an admin can change it." in html(refused)


def test_the_notes_page_pages_through_fifty_at_a_time(client, alice, account):
    client.force_login(alice)
    for number in range(51):
        note_add(tenant=account.tenant, account=account, author=alice, body=f"Entry {number:02d}")

    first = html(client.get(page_url(account, "notes/")))
    second = html(client.get(page_url(account, "notes/?page=2")))

    assert "Entry 50" in first and "Page 1 of 2" in first and '<a href="?page=2">Older</a>' in first
    assert "Entry 00" in second and "Entry 50" not in second


def notifications_of(user):
    """The subjects of the member's notifications in the app (each has its email copy as well)."""
    return list(Notification.objects.filter(user=user, channel=Channel.IN_APP).values_list("subject", flat=True))


def test_a_note_tells_the_teammates_ticked_in_their_notifications(client, alice, bob, account):
    client.force_login(bob)
    response = add(client, account, "Dana asked   for a call\nabout SSO", tell=[alice.pk], next=page_url(account))

    assert response.status_code == 302
    assert notifications_of(alice) == ['Bob CSM wrote on Juniper Health: "Dana asked for a call about SSO"']
    assert "Note added; Alice Admin told." in html(client.get(page_url(account)))
    client.force_login(alice)
    assert 'Bob CSM wrote on Juniper Health' in html(client.get("/t/alpha/notifications/"))


def test_a_note_sent_twice_tells_each_teammate_once(client, alice, bob, account):
    client.force_login(bob)
    form = {"body": "Kick-off done", "token": str(uuid.uuid4()), "tell": [alice.pk]}

    client.post(page_url(account, "notes/"), form)
    client.post(page_url(account, "notes/"), form)

    assert len(notifications_of(alice)) == 1


def test_the_note_form_offers_every_teammate_but_the_author(client, alice, bob, account):
    client.force_login(bob)
    page = html(client.get(page_url(account)))

    assert f'name="tell" value="{alice.pk}"' in page
    assert f'name="tell" value="{bob.pk}"' not in page


def test_a_note_cannot_tell_someone_outside_the_team_and_keeps_its_text(client, bob, charlie, account):
    client.force_login(bob)
    response = add(client, account, "Renewal risk", tell=[charlie.pk])

    assert response.status_code == 400
    assert f"{charlie.pk} is not one of them" in html(response) and "Renewal risk" in html(response)
    assert notes_of(account) == [] and notifications_of(charlie) == []


def test_a_note_with_a_malformed_teammate_is_refused_on_its_field(client, bob, account):
    client.force_login(bob)
    response = add(client, account, "Renewal risk", tell=["bob"])

    assert response.status_code == 400
    assert "bob is not one of them" in html(response)
