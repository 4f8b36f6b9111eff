import pytest
from django.contrib.messages import get_messages

from csplatform.customers.models import Account, DirtyAccount

from ..factories import AccountFactory

pytestmark = pytest.mark.django_db
ASSIGN = "/t/alpha/accounts/assign/"


def owner_of(account):
    return Account.objects.for_tenant(account.tenant).get(pk=account.pk).owner


def messages_of(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_an_admin_gives_an_account_to_a_csm_from_its_page(client, alice, bob, tenant):
    account = AccountFactory(tenant=tenant, owner=None)
    DirtyAccount.objects.for_tenant(tenant).delete()
    client.force_login(alice)
    page = f"/t/alpha/accounts/{account.pk}/"

    assert "Change<span" in client.get(page).content.decode()
    response = client.post(ASSIGN, {"account": account.pk, "owner": bob.pk, "next": page})

    assert response.status_code == 302 and response["Location"] == page
    assert owner_of(account) == bob
    assert messages_of(response) == ["1 account given to Bob CSM."]
    # The owner is in the criteria language, so the account is recomputed.
    assert DirtyAccount.objects.for_tenant(tenant).filter(account=account).exists()


def test_an_admin_gives_several_portfolio_rows_at_once_and_only_the_tenants_own(
    client, alice, bob, tenant, other_tenant
):
    mine = [AccountFactory(tenant=tenant, owner=None) for _ in range(2)]
    theirs = AccountFactory(tenant=other_tenant, owner=None)
    client.force_login(alice)

    response = client.post(ASSIGN, {"account": [mine[0].pk, mine[1].pk, theirs.pk], "owner": bob.pk})

    assert [owner_of(account) for account in mine] == [bob, bob]
    assert Account.objects.for_tenant(other_tenant).get(pk=theirs.pk).owner is None
    assert messages_of(response) == ["2 accounts given to Bob CSM."]


def test_an_account_can_be_left_unassigned_and_the_portfolio_finds_the_unassigned(client, alice, bob, tenant):
    account = AccountFactory(tenant=tenant, owner=bob, name="Orphan Labs")
    AccountFactory(tenant=tenant, owner=bob, name="Owned Labs")
    client.force_login(alice)

    response = client.post(ASSIGN, {"account": account.pk, "owner": "none"})
    assert messages_of(response) == ["1 account left unassigned."]
    listed = client.get("/t/alpha/?owner=none").content.decode()

    assert owner_of(account) is None
    assert "Orphan Labs" in listed and "Owned Labs" not in listed


def test_the_portfolio_offers_admins_a_checkbox_per_row_and_csms_none(client, alice, bob, tenant):
    AccountFactory(tenant=tenant, name="Cedar Media")
    client.force_login(alice)
    assert 'aria-label="Select Cedar Media"' in client.get("/t/alpha/").content.decode()

    client.force_login(bob)
    assert 'aria-label="Select Cedar Media"' not in client.get("/t/alpha/").content.decode()


def test_a_csm_cannot_assign_accounts(client, bob, alice, tenant):
    account = AccountFactory(tenant=tenant, owner=alice)
    client.force_login(bob)

    assert client.post(ASSIGN, {"account": account.pk, "owner": bob.pk}).status_code == 403
    assert "Change<span" not in client.get(f"/t/alpha/accounts/{account.pk}/").content.decode()
    assert owner_of(account) == alice


@pytest.mark.parametrize(
    "data, message",
    [
        ({"owner": "none"}, "Select the accounts first."),
        ({"account": "abc", "owner": "none"}, "Select accounts from the list."),
        ({"account": str(2**64), "owner": "none"}, "Select accounts from the list."),
        ({"account": "1", "owner": ""}, "Choose who gets the accounts."),
    ],
)
def test_a_bad_selection_is_refused_with_the_reason(client, alice, tenant, data, message):
    account = AccountFactory(tenant=tenant, owner=alice)
    client.force_login(alice)

    response = client.post(ASSIGN, data)

    assert response.status_code == 302 and messages_of(response) == [message]
    assert owner_of(account) == alice


def test_someone_outside_the_team_cannot_be_made_owner(client, alice, charlie, tenant):
    account = AccountFactory(tenant=tenant, owner=alice)
    client.force_login(alice)

    response = client.post(ASSIGN, {"account": account.pk, "owner": charlie.pk})

    assert messages_of(response) == ["Choose a member of this team."]
    assert owner_of(account) == alice
