import smtplib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from csplatform.tenancy.members import invitation_send, member_invite
from csplatform.tenancy.models import Role
from csplatform.tenancy.rls import tenant_context
from csplatform.tenancy.services import tenant_create


class Command(BaseCommand):
    help = (
        "Create a tenant with its first admin, and email the admin an invitation "
        "(its link is printed too, as the last line)."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The tenant's address: its pages live under /t/<slug>/.")
        parser.add_argument("name", help="The team's name, as its pages show it.")
        parser.add_argument("--admin", required=True, metavar="EMAIL", help="The first admin's email.")
        parser.add_argument("--admin-name", default="", help="The first admin's name.")
        parser.add_argument("--timezone", default="UTC", help="The tenant's IANA time zone, e.g. Europe/Berlin.")

    def handle(self, *args, slug, name, admin, admin_name, timezone, **options):
        """1. Create the tenant and its admin in one transaction; an invalid value changes nothing.
        2. Email the invitation; a mail server that refuses leaves the tenant, and the link printed.
        """
        try:
            with transaction.atomic():
                tenant = tenant_create(slug=slug, name=name, timezone_name=timezone)
                with tenant_context(tenant):
                    membership, created_user = member_invite(
                        tenant=tenant, email=admin, role=Role.ADMIN, actor=None, name=admin_name
                    )
        except ValidationError as exc:
            raise CommandError(validation_text(exc)) from exc
        self.stderr.write(f"Created tenant {tenant.slug!r} ({tenant.name}) with {membership.user.email} as its admin.")
        base_url = settings.CSP_PUBLIC_URL.rstrip("/")
        try:
            link = invitation_send(membership=membership, created_user=created_user, inviter=None, base_url=base_url)
        except (smtplib.SMTPException, OSError) as exc:
            raise CommandError(
                f"The tenant is created, but the invitation could not be emailed ({exc}). The admin can ask for a "
                f"link at {base_url}/password/reset/ once email works."
            ) from exc
        self.stderr.write(f"Invitation emailed to {membership.user.email}. Its link:")
        self.stdout.write(link)


def validation_text(exc):
    """A ValidationError in one line, each message after the field it is about."""
    if hasattr(exc, "error_dict"):
        return " ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
    return " ".join(exc.messages)
