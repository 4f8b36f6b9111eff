import pytest

from csplatform.tenancy.models import Role

from ..factories import AccountFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_login_form_has_an_email_field_a_password_field_and_a_sign_in_button(client):
    html = client.get("/login/").content.decode()
    assert 'name="username"' in html and 'type="email"' in html
    assert '<label for="id_username">Email</label>' in html
    assert 'name="password"' in html
    assert ">Sign in</button>" in html


def test_signing_in_with_email_lands_on_the_only_tenants_portfolio(client, alice, tenant):
    AccountFactory(tenant=tenant, name="Zenith Freight")
    response = client.post("/login/", {"username": "alice@alpha.example", "password": "password"}, follow=True)
    assert response.redirect_chain[-1][0] == "/t/alpha/"
    assert '<table class="accounts">' in response.content.decode()
    assert "Zenith Freight" in response.content.decode()


def test_email_at_sign_in_is_not_case_sensitive(client, alice):
    response = client.post("/login/", {"username": "Alice@Alpha.Example", "password": "password"})
    assert response.status_code == 302
    assert client.get("/").url == "/t/alpha/"


def test_wrong_password_shows_a_form_error_and_signs_nobody_in(client, alice):
    response = client.post("/login/", {"username": "alice@alpha.example", "password": "nope"})
    assert response.status_code == 200
    assert "That email and password do not match" in response.content.decode()
    assert client.get("/t/alpha/").status_code == 302


def test_anonymous_visitor_of_a_tenant_page_is_sent_to_sign_in(client, tenant):
    response = client.get("/t/alpha/")
    assert response.status_code == 302
    assert response.url == "/login/?next=/t/alpha/"


def test_signing_in_follows_next_back_to_the_page_asked_for(client, alice, tenant):
    account = AccountFactory(tenant=tenant)
    target = f"/t/alpha/accounts/{account.pk}/"
    response = client.post(f"/login/?next={target}", {"username": alice.email, "password": "password", "next": target})
    assert response.url == target


def test_tenant_page_of_a_tenant_you_do_not_belong_to_is_not_found(client, charlie, tenant):
    client.force_login(charlie)
    assert client.get("/t/alpha/").status_code == 404
    # The same answer as for a tenant that does not exist: nothing reveals which tenants exist.
    assert client.get("/t/no-such-tenant/").status_code == 404
    assert client.get("/t/beta/").status_code == 200


def test_home_with_several_tenants_offers_a_choice(client, alice, other_tenant):
    MembershipFactory(tenant=other_tenant, user=alice, role=Role.VIEWER)
    client.force_login(alice)
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/t/alpha/"' in html and 'href="/t/beta/"' in html
    assert "Choose a tenant" in html


def test_home_without_any_tenant_says_whom_to_ask(client, db):
    loner = UserFactory(email="loner@example.com")
    client.force_login(loner)
    response = client.get("/")
    assert response.status_code == 200
    assert "Ask an admin of your team to add you" in response.content.decode()


def test_header_switcher_lists_every_tenant_of_the_user_and_marks_the_current_one(client, alice, other_tenant):
    MembershipFactory(tenant=other_tenant, user=alice, role=Role.VIEWER)
    client.force_login(alice)
    html = client.get("/t/beta/").content.decode()
    assert 'aria-label="Switch tenant"' in html
    assert 'href="/t/alpha/"' in html
    assert '<a href="/t/beta/" aria-current="true">' in html


def test_user_with_one_tenant_sees_no_switcher(client, alice):
    client.force_login(alice)
    assert 'aria-label="Switch tenant"' not in client.get("/t/alpha/").content.decode()


def test_tenant_pages_know_the_users_role_in_that_tenant(client, bob, other_tenant):
    MembershipFactory(tenant=other_tenant, user=bob, role=Role.ADMIN)
    client.force_login(bob)
    alpha = client.get("/t/alpha/")
    beta = client.get("/t/beta/")
    assert (alpha.wsgi_request.tenant.slug, alpha.wsgi_request.membership.role) == ("alpha", Role.CSM)
    assert (beta.wsgi_request.tenant.slug, beta.wsgi_request.membership.role) == ("beta", Role.ADMIN)
    assert "Role: CSM" in alpha.content.decode()


def test_sign_out_needs_a_post_and_ends_the_session(client, alice):
    client.force_login(alice)
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response.url == "/login/"
    assert client.get("/t/alpha/").status_code == 302


def test_not_found_page_offers_a_way_back(client, alice):
    client.force_login(alice)
    response = client.get("/t/elsewhere/")
    assert response.status_code == 404
    assert "Go to your start page" in response.content.decode()


def test_pages_use_the_projects_own_stylesheet_and_a_skip_link(client, alice):
    client.force_login(alice)
    html = client.get("/t/alpha/").content.decode()
    assert 'href="/static/css/app.css"' in html
    assert '<a class="skip-link" href="#main">' in html
    assert client.get("/static/css/app.css").status_code == 200
