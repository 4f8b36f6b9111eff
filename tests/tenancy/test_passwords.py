import re

import pytest

from csplatform.tenancy import ratelimit
from csplatform.tenancy.models import User

from ..factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_cache")]


def page(response):
    return response.content.decode()


def link_in(message):
    return re.search(r"http://testserver(/password/reset/\S+/)", message.get_content()).group(1)


def choose_password(client, link, password):
    """Follow a set-password link and choose `password`; the answer of the form's POST."""
    form_page = client.get(link, follow=True)
    set_url = form_page.redirect_chain[-1][0]
    return client.post(set_url, {"new_password1": password, "new_password2": password})


def test_the_sign_in_page_offers_a_way_back_in_without_the_password(client):
    assert 'href="/password/reset/"' in page(client.get("/login/"))


def test_a_forgotten_password_is_replaced_through_a_link_sent_by_email(client, alice, smtp_server):
    response = client.post("/password/reset/", {"email": "Alice@Alpha.example"}, follow=True)
    assert "Check your email" in page(response)

    (message,) = smtp_server.messages
    assert message["To"] == "alice@alpha.example" and message["Subject"] == "Set a new csplatform password"
    done = choose_password(client, link_in(message), "a brand new secret 42")
    assert done.status_code == 302 and done.url == "/login/"
    assert client.login(username="alice@alpha.example", password="a brand new secret 42")
    assert not client.login(username="alice@alpha.example", password="password")


def test_a_reset_link_works_once(client, alice, smtp_server):
    client.post("/password/reset/", {"email": alice.email})
    link = link_in(smtp_server.messages[0])
    choose_password(client, link, "a brand new secret 42")
    assert "This link no longer works" in page(client.get(link, follow=True))


def test_an_unknown_email_gets_the_same_answer_and_no_mail(client, alice, smtp_server):
    response = client.post("/password/reset/", {"email": "nobody@alpha.example"}, follow=True)
    assert "Check your email" in page(response)
    assert smtp_server.messages == []


def test_a_deactivated_user_is_sent_no_link(client, smtp_server):
    UserFactory(email="gone@alpha.example", is_active=False)
    client.post("/password/reset/", {"email": "gone@alpha.example"})
    assert smtp_server.messages == []


def test_an_invited_member_whose_invitation_expired_gets_in_with_a_reset_link(client, smtp_server):
    User.objects.create_user(email="nina@alpha.example", password=None)
    client.post("/password/reset/", {"email": "nina@alpha.example"})
    choose_password(client, link_in(smtp_server.messages[0]), "a brand new secret 42")
    assert client.login(username="nina@alpha.example", password="a brand new secret 42")


def test_an_address_that_is_not_an_email_is_a_form_error(client, smtp_server):
    response = client.post("/password/reset/", {"email": "not-an-email"})
    assert response.status_code == 200
    assert "Enter a valid email address." in page(response) and 'value="not-an-email"' in page(response)


def test_reset_links_for_one_account_are_limited(client, alice, smtp_server):
    for n in range(ratelimit.PASSWORD_RESET_REQUESTS.per_account):
        client.post("/password/reset/", {"email": alice.email}, REMOTE_ADDR=f"198.51.100.{n}")
    response = client.post("/password/reset/", {"email": alice.email}, REMOTE_ADDR="192.0.2.9")
    assert "Too many requests for a new password" in page(response)
    assert len(smtp_server.messages) == ratelimit.PASSWORD_RESET_REQUESTS.per_account


def test_setting_a_new_password_lifts_the_sign_in_limit(client, alice, smtp_server):
    for _ in range(ratelimit.SIGN_IN_FAILURES.per_account):
        client.post("/login/", {"username": alice.email, "password": "wrong"})
    client.post("/password/reset/", {"email": alice.email})
    choose_password(client, link_in(smtp_server.messages[0]), "a brand new secret 42")
    response = client.post("/login/", {"username": alice.email, "password": "a brand new secret 42"})
    assert response.status_code == 302


def test_the_profile_changes_the_users_name(client, alice):
    client.force_login(alice)
    response = client.post("/profile/", {"name": "Alice Liddell"}, follow=True)
    assert "Your name is saved." in page(response)
    alice.refresh_from_db()
    assert alice.name == "Alice Liddell"


def test_the_profile_lists_the_users_teams_with_their_settings_there(client, alice, tenant):
    client.force_login(alice)
    html = page(client.get("/profile/"))
    assert "Alpha Software" in html and "Admin" in html
    membership = alice.memberships.get()
    assert f'href="/t/alpha/settings/members/{membership.pk}/hours/"' in html


def test_the_profile_names_only_the_users_own_teams(client, bob, charlie):
    client.force_login(bob)
    assert "Beta" not in page(client.get("/profile/"))


def test_changing_the_password_keeps_this_browser_signed_in_and_tells_the_user(client, alice, smtp_server):
    client.force_login(alice)
    other_browser = type(client)()
    other_browser.force_login(alice)
    response = client.post(
        "/profile/password/",
        {"old_password": "password", "new_password1": "a brand new secret 42", "new_password2": "a brand new secret 42"},
        follow=True,
    )
    assert "Your password is changed." in page(response)
    assert client.get("/profile/").status_code == 200
    assert other_browser.get("/profile/").status_code == 302
    (message,) = smtp_server.messages
    assert message["Subject"] == "Your csplatform password was changed"
    assert "http://testserver/password/reset/" in message.get_content()


def test_a_wrong_current_password_is_a_form_error_and_changes_nothing(client, alice, smtp_server):
    client.force_login(alice)
    response = client.post(
        "/profile/password/",
        {"old_password": "nope", "new_password1": "a brand new secret 42", "new_password2": "a brand new secret 42"},
    )
    assert response.status_code == 400
    assert "Your old password was entered incorrectly." in page(response)
    alice.refresh_from_db()
    assert alice.check_password("password")
    assert smtp_server.messages == []


def test_a_password_change_is_made_even_when_the_mail_server_is_down(client, alice, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    client.force_login(alice)
    response = client.post(
        "/profile/password/",
        {"old_password": "password", "new_password1": "a brand new secret 42", "new_password2": "a brand new secret 42"},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("a brand new secret 42")


def test_the_profile_asks_a_visitor_to_sign_in(client):
    assert client.get("/profile/").url == "/login/?next=/profile/"
