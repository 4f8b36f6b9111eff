"""Sending the stored OutboundEmail rows, each exactly once across worker crashes.

An email is sent by reading its row. The row moves queued -> sent with a
conditional update that commits while the SMTP server holds the whole
message but not yet its end: the final "." of DATA is written only after
the commit. So a worker killed at any moment leaves one of two states:

- killed before the commit: the row is still queued and the server throws
  the unfinished message away when the connection drops; the step runs
  again after its claim goes stale and sends the email then;
- killed after the commit: the row says sent, and the "." follows within
  one send() call, so the server has the message; nobody sends it again.

What is left open is the gap between the commit returning and that one
send() call reaching the kernel (microseconds): a kill exactly there loses
the email, which is marked sent. Sending before marking would instead
duplicate the email on a kill anywhere between the server accepting it and
the mark committing, a network round trip plus a database commit. Once the
"." is written, only an answer of refusal from the server undoes the mark;
a connection lost while waiting for that answer counts as sent, the same
decision the restarted worker makes, and the row keeps the error.
"""

import re
import smtplib
import socket

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.mail.message import sanitize_address
from django.utils import timezone

from .models import EmailStatus, OutboundEmail

# SMTP transparency (RFC 5321 4.5.2): a line starting with "." gets a second one.
LEADING_DOT = re.compile(rb"(?m)^\.")


class TransientSendError(Exception):
    """The mail server could not take the email now (down, 4xx); try again later."""


class StoreOnlyBackend(BaseEmailBackend):
    """For the embedded demo: nothing leaves the machine; the Outbox page reads OutboundEmail."""

    def send_messages(self, email_messages):
        return len(email_messages)


def message_of(email, connection=None):
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=email.text,
        from_email=email.from_email or settings.DEFAULT_FROM_EMAIL,
        to=[email.to_email],
        reply_to=[email.reply_to] if email.reply_to else None,
        connection=connection,
        # A stable Message-ID lets receiving systems recognise the same email.
        headers={"Message-ID": f"<{email.idempotency_key.replace(':', '.')}.{email.tenant_id}@csplatform>"},
    )
    if email.html:
        message.attach_alternative(email.html, "text/html")
    for attachment in email.attachments:
        message.attach(attachment["filename"], attachment["content"], attachment["mimetype"])
    return message


def _is_permanent(exc):
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    code = getattr(exc, "smtp_code", None)
    return isinstance(code, int) and code >= 500


class NotQueued(Exception):
    """The row left the queued state meanwhile (another worker sent it); nothing may be sent."""


def _mark_sent(email, now=None):
    """Commit queued -> sent for this row (sent at `now`, else the current time), or raise NotQueued."""
    marked = (
        OutboundEmail.objects.for_tenant(email.tenant_id)
        .filter(pk=email.pk, status=EmailStatus.QUEUED)
        .update(status=EmailStatus.SENT, sent_at=now or timezone.now(), attempts=email.attempts + 1, error="")
    )
    if not marked:
        raise NotQueued()


def _smtp_transaction(smtp, message, before_end_of_data):
    """One SMTP mail transaction that calls `before_end_of_data()` before writing the final ".".

    Returns the error text when the connection broke after the "." (the
    server may well have the email), else "". Refusals raise the SMTP
    exceptions smtplib's sendmail raises.
    """
    encoding = message.encoding or settings.DEFAULT_CHARSET
    sender = sanitize_address(message.from_email, encoding)
    data = message.message().as_bytes(linesep="\r\n")
    smtp.ehlo_or_helo_if_needed()
    code, reply = smtp.mail(sender)
    if code != 250:
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    refused = {}
    for recipient in message.recipients():
        recipient = sanitize_address(recipient, encoding)
        code, reply = smtp.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = (code, reply)
    if refused:
        raise smtplib.SMTPRecipientsRefused(refused)
    code, reply = smtp.docmd("data")
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    data = LEADING_DOT.sub(b"..", data)
    # The "." follows the content as a write of its own: without NODELAY it would wait for an ACK.
    smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    smtp.send(data if data.endswith(b"\r\n") else data + b"\r\n")
    try:
        before_end_of_data()
    except BaseException:
        # The server holds an unfinished message: closing without the "." makes it discard it.
        smtp.close()
        raise
    smtp.send(b".\r\n")
    try:
        code, reply = smtp.getreply()
    except smtplib.SMTPServerDisconnected as exc:
        return f"Sent, but the server did not answer the end of the message: {exc}"
    if code != 250:
        raise smtplib.SMTPDataError(code, reply)
    return ""


class Outbox:
    """The mail connection of a batch of emails: Django's configured backend, opened once.

    `with Outbox() as outbox: outbox.deliver(email)` for each email; the
    connection opens at the first email and closes with the block.
    """

    def __init__(self):
        self.backend = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        if self.backend is not None:
            self.backend.close()
            self.backend = None

    def deliver(self, email, now=None):
        """Send one queued email and mark it sent (see the module docstring); True if this call sent it.

        A permanent refusal (5xx) marks the row failed; anything else before
        the end of the message raises TransientSendError and leaves the row
        queued for the next attempt.
        """
        message = message_of(email)
        marked = False

        def mark():
            nonlocal marked
            _mark_sent(email, now)
            marked = True

        try:
            if self.backend is None:
                self.backend = get_connection(fail_silently=False)
                self.backend.open()
            if isinstance(self.backend, SMTPBackend):
                error = _smtp_transaction(self.backend.connection, message, mark)
                if error:
                    OutboundEmail.objects.for_tenant(email.tenant_id).filter(pk=email.pk).update(error=error[:2000])
                    self.close()
            else:
                mark()
                self.backend.send_messages([message])
            return True
        except NotQueued:
            self.close()
            return False
        except (smtplib.SMTPException, OSError) as exc:
            permanent = _is_permanent(exc)
            OutboundEmail.objects.for_tenant(email.tenant_id).filter(
                pk=email.pk, status=EmailStatus.SENT if marked else EmailStatus.QUEUED
            ).update(
                status=EmailStatus.FAILED if permanent else EmailStatus.QUEUED,
                sent_at=None,
                attempts=email.attempts + 1,
                error=str(exc)[:2000],
            )
            if not permanent:
                self.close()
                raise TransientSendError(str(exc) or exc.__class__.__name__) from exc
            self._reset()
            return False

    def _reset(self):
        """After a refusal the connection stays usable once the mail transaction is reset."""
        connection = getattr(self.backend, "connection", None)
        if connection is None:
            return
        try:
            connection.rset()
        except (smtplib.SMTPException, OSError):
            self.close()


def email_deliver(*, email, now=None):
    """Send one queued email over a connection of its own; see Outbox.deliver.

    `now` is the sending time to record when the step runner replays the past.
    """
    with Outbox() as outbox:
        return outbox.deliver(email, now)
