import email
import email.policy
import socket
import threading

import pytest
from aiosmtpd.controller import Controller

from bench.smtp_sink import OffersPipelining
from csplatform.customers.models import ContactRole
from lifecycle.services import stages_apply_template
from tests.factories import AccountFactory, ContactFactory
from tests.security.conftest import pytest_terminal_summary  # noqa: F401  (the worker crash test's figures)


class Inbox(OffersPipelining):
    """An aiosmtpd handler that keeps every accepted message, parsed; it offers PIPELINING if asked."""

    def __init__(self, pipelining=False):
        self.messages = []
        self.lock = threading.Lock()
        self.pipelining = pipelining

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def subjects(self):
        return sorted(str(message["Subject"]) for message in self.messages)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server(request, settings):
    """A real SMTP server on a free loopback port; Django's SMTP backend sends to it.

    Parametrized indirectly with True, it offers PIPELINING.
    """
    inbox = Inbox(pipelining=getattr(request, "param", False))
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    yield inbox
    controller.stop()


@pytest.fixture
def stages(tenant, alice):
    """Seed 001's lifecycle: onboarding -> adopting -> expanding -> renewal."""
    return {
        stage.key: stage
        for stage in stages_apply_template(tenant=tenant, template_key="onboarding_to_renewal", actor=alice)
    }


@pytest.fixture
def customer(tenant, bob):
    """An account owned by bob with a user contact and, created later, its administrator."""
    account = AccountFactory(tenant=tenant, name="Acme Rockets", owner=bob)
    ContactFactory(account=account, name="Uma User", email="uma@acme.example", role=ContactRole.USER)
    ContactFactory(account=account, name="Ada Admin", email="ada@acme.example", role=ContactRole.ADMINISTRATOR)
    return account
