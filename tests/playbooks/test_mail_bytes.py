"""The runner writes each email's bytes and envelope itself, faster than Django; they must be exactly Django's."""

import logging
from email.errors import HeaderParseError
from email.policy import compat32

from django.core.mail import EmailMessage
from django.core.mail.message import sanitize_address
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from csplatform.tenancy.models import User
from playbooks.mail import MESSAGE_POLICY, StoreOnlyBackend, message_bytes, message_of, sender
from playbooks.models import OutboundEmail

# Any text a template may render, astral and combining characters included; and plain ASCII, the common case.
ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=150)
ASCII_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=150)
INVITATION = {"filename": "invite.ics", "content": "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "mimetype": "text/calendar"}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=st.one_of(ASCII_TEXT, ANY_TEXT),
    owner_name=st.one_of(ASCII_TEXT, ANY_TEXT),
    text=ANY_TEXT,
    html=st.one_of(st.just(""), ANY_TEXT),
    invitation=st.booleans(),
)
def test_a_message_is_written_byte_for_byte_as_django_writes_it(subject, owner_name, text, html, invitation):
    owner = User(name=" ".join(owner_name.split()), email="casey@vendor.example")
    email = OutboundEmail(
        tenant_id=7,
        idempotency_key="steprun:12:email:34",
        # As the step stores it: one header line, at most 500 characters.
        subject=" ".join(subject.split())[:500],
        text=text,
        html=html,
        from_email=sender(owner),
        to_email="pat@customer.example",
        reply_to=owner.email,
        attachments=[INVITATION] if invitation else [],
    )
    mime = message_of(email).message()

    assert message_bytes(mime) == mime.as_bytes(linesep="\r\n")


def folded(policy, name, value):
    """The header's bytes, or the error of a value that would put a line of its own into the message."""
    try:
        return policy.clone(linesep="\r\n").fold_binary(name, value)
    except HeaderParseError as error:
        return str(error)


@settings(max_examples=1000, deadline=None)
@given(
    name=st.sampled_from(["Subject", "From", "To", "Reply-To", "X-A-Rather-Long-Header-Name"]),
    value=st.one_of(ASCII_TEXT, ANY_TEXT),
)
# A file separator is a line break to the legacy policy, so a header line would start with "0:".
@example(name="Subject", value="\x1c0:")
def test_every_header_is_folded_or_refused_as_the_legacy_policy_does_it(name, value):
    assert folded(MESSAGE_POLICY, name, value) == folded(compat32, name, value)


@settings(max_examples=400, deadline=None)
@given(address=st.emails())
def test_a_bare_address_makes_the_envelope_recipient_the_full_parse_makes(address):
    assert sanitize_address(("", address), "utf-8") == sanitize_address(address, "utf-8")


def test_the_demos_backend_logs_the_platforms_own_emails_and_keeps_the_outboxs_out_of_the_log(caplog):
    own = EmailMessage("Set a new csplatform password", "Choose it here: http://x/password/reset/a/b/", to=["a@b.c"])
    stored = OutboundEmail(tenant_id=7, idempotency_key="steprun:1:email:2", subject="Welcome", text="Hello from your CSM")
    outbox = message_of(stored)

    with caplog.at_level(logging.INFO, logger="playbooks.mail"):
        assert StoreOnlyBackend().send_messages([own, outbox]) == 2

    assert "To a@b.c: Set a new csplatform password" in caplog.text and "/password/reset/a/b/" in caplog.text
    assert "Hello from your CSM" not in caplog.text
