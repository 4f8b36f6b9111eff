import pytest

from alerts.models import Channel, Notification
from csplatform.customers.models import AccountNote
from csplatform.customers.services import note_add
from tests.conftest import make_api_client
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/notes/"


@pytest.fixture
def account(tenant):
    return AccountFactory(tenant=tenant, external_id="acme")


def fields_in_error(response):
    return {item["field"] for item in response.json()["error"].get("fields", [])}


def test_create_a_note_on_an_account_by_its_external_id_and_read_it_back(api, account):
    response = api.post(URL, {"account": "acme", "body": "QBR booked for March", "pinned": True}, format="json")

    assert response.status_code == 201, response.json()
    body = api.get(f"{URL}{response.json()['id']}/").json()
    assert (body["account"], body["body"], body["pinned"]) == ("acme", "QBR booked for March", True)


def test_a_note_sent_again_with_its_key_is_stored_once(api, account):
    note = {"account": "acme", "body": "Synced from the CRM", "key": "crm-note-42"}

    first = api.post(URL, note, format="json")
    second = api.post(URL, note, format="json")

    assert first.json()["id"] == second.json()["id"]
    assert AccountNote.objects.for_tenant(account.tenant).count() == 1


def test_a_note_needs_a_known_account_and_some_text(api, account, other_tenant):
    AccountFactory(tenant=other_tenant, external_id="theirs")

    assert fields_in_error(api.post(URL, {"account": "theirs", "body": "x"}, format="json")) == {"account"}
    assert fields_in_error(api.post(URL, {"account": "acme", "body": "  "}, format="json")) == {"body"}
    assert fields_in_error(api.post(URL, {"account": "acme", "body": "x", "boddy": "y"}, format="json")) == {"boddy"}
    assert AccountNote.objects.count() == 0


def test_list_filters_by_account_author_pinned_and_text(api, tenant, alice, bob, account):
    other = AccountFactory(tenant=tenant, external_id="globex")
    note_add(tenant=tenant, account=account, author=alice, body="Budget approved", pinned=True)
    note_add(tenant=tenant, account=account, author=bob, body="Sent the deck")
    note_add(tenant=tenant, account=other, author=bob, body="Budget frozen")

    def bodies(query):
        return [note["body"] for note in api.get(URL + query).json()["results"]]

    assert bodies("?account=acme") == ["Budget approved", "Sent the deck"]
    assert bodies("?author=bob@alpha.example") == ["Budget frozen", "Sent the deck"]
    assert bodies("?pinned=true") == ["Budget approved"]
    assert bodies("?q=budget&ordering=created_at") == ["Budget approved", "Budget frozen"]


def test_update_the_text_and_pin_but_not_the_account(api, tenant, alice, account):
    note = note_add(tenant=tenant, account=account, author=alice, body="Draft")
    AccountFactory(tenant=tenant, external_id="globex")

    moved = api.patch(f"{URL}{note.pk}/", {"account": "globex"}, format="json")
    changed = api.patch(f"{URL}{note.pk}/", {"body": "Final", "pinned": True}, format="json")

    assert moved.status_code == 400 and fields_in_error(moved) == {"account"}
    assert (changed.json()["body"], changed.json()["pinned"], changed.json()["account"]) == ("Final", True, "acme")


def test_delete_a_note(api, tenant, alice, account):
    note = note_add(tenant=tenant, account=account, author=alice, body="Obsolete")

    assert api.delete(f"{URL}{note.pk}/").status_code == 204
    assert not AccountNote.objects.for_tenant(tenant).exists()


def test_another_tenants_note_answers_404(other_api, tenant, alice, account):
    note = note_add(tenant=tenant, account=account, author=alice, body="Ours")

    assert other_api.get(f"{URL}{note.pk}/").status_code == 404
    assert other_api.patch(f"{URL}{note.pk}/", {"body": "Theirs"}, format="json").status_code == 404
    assert other_api.get(URL).json()["results"] == []


def test_a_read_only_key_lists_notes_but_cannot_write_them(tenant, account):
    reader = make_api_client(tenant, scopes=["read"])

    assert reader.get(URL).status_code == 200
    assert reader.post(URL, {"account": "acme", "body": "x"}, format="json").status_code == 403


def told(user):
    """The subjects of the member's notifications in the app (each has its email copy as well)."""
    return list(Notification.objects.filter(user=user, channel=Channel.IN_APP).values_list("subject", flat=True))


def test_a_note_tells_the_members_it_names_once_however_often_it_is_sent(api, account, bob):
    note = {"account": "acme", "body": "Renewal call moved to Friday", "key": "crm-7", "tell": ["Bob@Alpha.example"]}

    assert api.post(URL, note, format="json").status_code == 201
    api.post(URL, note, format="json")

    (subject,) = told(bob)
    # The key has no creator, so the note has no author to name.
    assert subject.startswith("Someone wrote on ") and subject.endswith(': "Renewal call moved to Friday"')


def test_a_note_cannot_tell_someone_outside_the_team_and_is_not_stored(api, account, charlie):
    response = api.post(URL, {"account": "acme", "body": "x", "tell": [charlie.email]}, format="json")

    assert response.status_code == 400 and fields_in_error(response) == {"tell"}
    assert "charlie@beta.example is not a member of this team." in str(response.json())
    assert AccountNote.objects.count() == 0 and told(charlie) == []


def test_members_are_told_of_a_note_only_when_it_is_written(api, tenant, alice, bob, account):
    note = note_add(tenant=tenant, account=account, author=alice, body="Budget approved")

    response = api.patch(f"{URL}{note.pk}/", {"tell": [bob.email]}, format="json")

    assert response.status_code == 400 and fields_in_error(response) == {"tell"}
    assert told(bob) == []
