import io
import re

import pytest
from django.core.management import CommandError, call_command

from csplatform.tenancy.models import Membership, Role, Tenant, User

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_cache")]


def create(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("tenant_create", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_an_operator_creates_a_tenant_whose_first_admin_sets_a_password_from_the_emailed_link(
    client, smtp_server, settings
):
    settings.CSP_PUBLIC_URL = "http://testserver"
    out, err = create("acme", "Acme Inc", "--admin", "Jane@Acme.example", "--admin-name", "Jane", "--timezone",
                      "Europe/Berlin")

    tenant = Tenant.objects.get(slug="acme")
    assert (tenant.name, tenant.timezone) == ("Acme Inc", "Europe/Berlin")
    membership = Membership.objects.for_tenant(tenant).get()
    assert (membership.user.email, membership.user.name, membership.role) == ("jane@acme.example", "Jane", Role.ADMIN)
    (message,) = smtp_server.messages
    assert message["To"] == "jane@acme.example" and "with the Admin role" in message.get_content()
    link = out.strip().splitlines()[-1]
    assert link in message.get_content()

    form_page = client.get(link.removeprefix("http://testserver"), follow=True)
    assert "Welcome to Acme Inc" in form_page.content.decode()
    client.post(form_page.redirect_chain[-1][0], {"new_password1": "a brand new secret 42",
                                                  "new_password2": "a brand new secret 42"})
    assert client.login(username="jane@acme.example", password="a brand new secret 42")
    assert client.get("/").url == "/t/acme/"


def test_an_existing_user_made_admin_of_a_new_tenant_is_sent_a_sign_in_link(alice, smtp_server, settings):
    settings.CSP_PUBLIC_URL = "https://cs.example.com"
    out, _ = create("acme", "Acme Inc", "--admin", alice.email)

    assert out.strip() == "https://cs.example.com/t/acme/"
    assert alice.memberships.count() == 2 and alice.check_password("password")


@pytest.mark.parametrize(
    "args, reason",
    [
        (["alpha", "Another Alpha"], "slug: Tenant with this Slug already exists."),
        (["acme", "Acme Inc", "--timezone", "Mars/Olympus"], "timezone: 'Mars/Olympus' is not a known IANA time zone."),
        (["not a slug", "Acme Inc"], "slug: Enter a valid “slug”"),
    ],
)
def test_a_bad_value_creates_nothing_and_says_why(tenant, smtp_server, args, reason):
    with pytest.raises(CommandError, match=re.escape(reason)):
        create(*args, "--admin", "jane@acme.example")

    assert list(Tenant.objects.values_list("slug", flat=True)) == ["alpha"]
    assert not User.objects.filter(email="jane@acme.example").exists()
    assert smtp_server.messages == []


def test_a_mail_server_that_is_down_leaves_the_tenant_and_says_how_the_admin_gets_in(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    settings.CSP_PUBLIC_URL = "https://cs.example.com"

    with pytest.raises(CommandError, match=re.escape("https://cs.example.com/password/reset/")):
        create("acme", "Acme Inc", "--admin", "jane@acme.example")

    assert Membership.objects.filter(tenant__slug="acme", user__email="jane@acme.example", role=Role.ADMIN).exists()
