import re

import pytest
from django.core import mail

from csplatform.tenancy.models import AuditLogEntry, Membership, Role, User

from ..factories import UserFactory
from .conftest import page

pytestmark = pytest.mark.django_db
URL = "/t/alpha/settings/members/"


@pytest.fixture(autouse=True)
def locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def test_members_are_listed_with_their_roles(admin_client, bob):
    html = page(admin_client.get(URL))
    assert "alice@alpha.example" in html and "bob@alpha.example" in html
    assert '<option value="csm" selected>' in html


def test_inviting_a_new_person_creates_them_without_a_password_and_mails_a_link_that_sets_one(admin_client, tenant, client):
    response = admin_client.post(URL, {"email": "Nina@Alpha.example", "name": "Nina", "role": "viewer"}, follow=True)
    assert "Invited nina@alpha.example as Viewer." in page(response)
    user = User.objects.get(email="nina@alpha.example")
    assert not user.has_usable_password()
    assert Membership.objects.for_tenant(tenant).get(user=user).role == Role.VIEWER
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="member.invited").exists()

    (message,) = mail.outbox
    assert message.to == ["nina@alpha.example"] and "Alpha Software" in message.subject
    link = re.search(r"http://testserver(/t/alpha/settings/join/\S+/)", message.body).group(1)
    admin_client.logout()
    form_page = client.get(link, follow=True)
    assert "Welcome to Alpha Software" in page(form_page)
    set_url = form_page.redirect_chain[-1][0]
    done = client.post(set_url, {"new_password1": "a long new secret 42", "new_password2": "a long new secret 42"})
    assert done.status_code == 302 and done.url == "/login/"
    assert client.login(username="nina@alpha.example", password="a long new secret 42")
    assert "This link no longer works" in page(client.get(link, follow=True))


def test_inviting_an_existing_user_adds_them_and_mails_a_sign_in_link(admin_client, tenant, charlie):
    admin_client.post(URL, {"email": "charlie@beta.example", "role": "csm"})
    assert Membership.objects.for_tenant(tenant).filter(user=charlie, role=Role.CSM).exists()
    charlie.refresh_from_db()
    assert charlie.has_usable_password()
    assert "http://testserver/t/alpha/" in mail.outbox[0].body


def test_inviting_a_member_again_is_refused_on_the_email_field(admin_client, bob):
    html = page(admin_client.post(URL, {"email": "bob@alpha.example", "name": "Bob again", "role": "admin"}))
    assert "bob@alpha.example is already a member of this team." in html
    assert 'value="Bob again"' in html
    assert mail.outbox == []


def test_an_invalid_email_is_shown_on_the_form(admin_client):
    html = page(admin_client.post(URL, {"email": "not-an-email", "role": "csm"}))
    assert "Enter a valid email address." in html and 'value="not-an-email"' in html


def test_changing_a_role_is_audited(admin_client, tenant, bob):
    membership = Membership.objects.for_tenant(tenant).get(user=bob)
    response = admin_client.post(f"{URL}{membership.pk}/role/", {"role": "admin"}, follow=True)
    assert "bob@alpha.example is now Admin." in page(response)
    entry = AuditLogEntry.objects.for_tenant(tenant).get(action="member.role_changed")
    assert entry.before["role"] == "csm" and entry.after["role"] == "admin"


def test_the_last_admin_can_be_neither_demoted_nor_removed(admin_client, tenant, alice):
    membership = Membership.objects.for_tenant(tenant).get(user=alice)
    response = admin_client.post(f"{URL}{membership.pk}/role/", {"role": "viewer"}, follow=True)
    assert "at least one admin" in page(response)
    response = admin_client.post(f"{URL}{membership.pk}/remove/", follow=True)
    assert "at least one admin" in page(response)
    assert Membership.objects.for_tenant(tenant).get(user=alice).role == Role.ADMIN


def test_removing_a_member_keeps_their_user(admin_client, tenant, bob):
    membership = Membership.objects.for_tenant(tenant).get(user=bob)
    admin_client.post(f"{URL}{membership.pk}/remove/")
    assert not Membership.objects.for_tenant(tenant).filter(user=bob).exists()
    assert User.objects.filter(pk=bob.pk).exists()
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="member.removed").exists()


def test_a_member_of_another_tenant_cannot_be_touched(admin_client, other_tenant):
    outsider = UserFactory(email="out@beta.example")
    membership = Membership.objects.create(tenant=other_tenant, user=outsider, role=Role.CSM)
    assert admin_client.post(f"{URL}{membership.pk}/role/", {"role": "admin"}).status_code == 404
    assert admin_client.post(f"{URL}{membership.pk}/remove/").status_code == 404


def test_an_invitation_the_mail_server_refuses_keeps_the_member_and_says_how_they_get_in(admin_client, tenant, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2

    response = admin_client.post(URL, {"email": "nina@alpha.example", "role": "csm"}, follow=True)

    assert "Invited nina@alpha.example as CSM, but the invitation email could not be sent." in page(response)
    assert "Forgot your password?" in page(response)
    assert Membership.objects.for_tenant(tenant).filter(user__email="nina@alpha.example").exists()


def test_a_member_who_set_no_password_yet_is_sent_the_invitation_again_with_a_working_link(admin_client, tenant, client):
    admin_client.post(URL, {"email": "nina@alpha.example", "role": "csm"})
    membership = Membership.objects.for_tenant(tenant).get(user__email="nina@alpha.example")
    assert "Send the invitation again" in page(admin_client.get(URL))

    response = admin_client.post(f"{URL}{membership.pk}/invite/", follow=True)

    assert "Sent nina@alpha.example a new invitation." in page(response)
    assert len(mail.outbox) == 2
    link = re.search(r"http://testserver(/t/alpha/settings/join/\S+/)", mail.outbox[1].body).group(1)
    assert "Welcome to Alpha Software" in page(client.get(link, follow=True))


def test_a_member_with_a_password_is_not_sent_an_invitation_again(admin_client, tenant, bob):
    membership = Membership.objects.for_tenant(tenant).get(user=bob)

    response = admin_client.post(f"{URL}{membership.pk}/invite/", follow=True)

    assert "bob@alpha.example has set a password already" in page(response)
    assert mail.outbox == []


def test_another_tenants_member_cannot_be_sent_an_invitation(admin_client, other_tenant, charlie):
    membership = Membership.objects.for_tenant(other_tenant).get(user=charlie)
    assert admin_client.post(f"{URL}{membership.pk}/invite/").status_code == 404
    assert mail.outbox == []
