import datetime as dt
from decimal import Decimal

import pytest

from csplatform.customers.models import Account
from csplatform.tenancy.models import Role

from ..factories import AccountFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

DETAILS = {
    "name": "Juniper Health Group",
    "domain": "juniper.example",
    "plan": "enterprise",
    "mrr": "4200.50",
    "currency": "eur",
    "signup_date": "2025-01-10",
    "contract_start": "2025-02-01",
    "renewal_date": "2026-02-01",
    "trial_ends_at": "",
    "card_expires_at": "2027-06-30",
}


@pytest.fixture
def account(tenant):
    return AccountFactory(tenant=tenant, name="Juniper Health", external_id="juniper", plan="pro", mrr=100)


def url(account):
    return f"/t/alpha/accounts/{account.pk}/details/"


def html(response):
    return response.content.decode()


def test_a_csm_corrects_an_accounts_details_and_the_account_is_recomputed(client, bob, account):
    client.force_login(bob)
    response = client.post(url(account), DETAILS, follow=True)

    assert "Saved the details of Juniper Health Group." in html(response)
    account.refresh_from_db()
    assert (account.name, account.plan, account.mrr, account.currency) == (
        "Juniper Health Group", "enterprise", Decimal("4200.50"), "EUR"
    )
    assert account.renewal_date == dt.date(2026, 2, 1) and account.external_id == "juniper"
    assert Account.objects.for_tenant(account.tenant).dirty().filter(pk=account.pk).exists()


def test_wrong_values_are_named_on_their_fields_and_nothing_is_saved(client, bob, account):
    client.force_login(bob)
    wrong = {**DETAILS, "currency": "u5d", "mrr": "-5", "renewal_date": "2024-12-31"}
    response = client.post(url(account), wrong)

    assert response.status_code == 400
    page = html(response)
    assert "Must be a three-letter currency code such as USD." in page
    assert "Ensure this value is greater than or equal to 0." in page
    assert "Must not be before the contract start." in page
    assert 'value="Juniper Health Group"' in page and "Edit the details of Juniper Health<" in page
    account.refresh_from_db()
    assert (account.name, account.plan) == ("Juniper Health", "pro")


def test_the_form_starts_from_the_stored_values(client, bob, account):
    client.force_login(bob)
    page = html(client.get(url(account)))

    assert 'value="Juniper Health"' in page and 'value="pro"' in page and "<code>juniper</code>" in page


def test_the_account_page_offers_the_edit_to_editors_only(client, bob, tenant, account):
    client.force_login(bob)
    assert url(account) in html(client.get(f"/t/alpha/accounts/{account.pk}/"))

    viewer = UserFactory(email="vera@alpha.example")
    MembershipFactory(tenant=tenant, user=viewer, role=Role.VIEWER)
    client.force_login(viewer)
    assert url(account) not in html(client.get(f"/t/alpha/accounts/{account.pk}/"))
    assert client.get(url(account)).status_code == 403
    assert client.post(url(account), DETAILS).status_code == 403


def test_another_tenants_account_is_not_found(client, charlie, account):
    client.force_login(charlie)
    assert client.get(f"/t/beta/accounts/{account.pk}/details/").status_code == 404
    assert client.post(f"/t/beta/accounts/{account.pk}/details/", DETAILS).status_code == 404
