"""Sending the stored OutboundEmail rows, each exactly once across worker crashes.

An email is sent by reading its row. The row moves queued -> sent with a
conditional update that commits while the SMTP server holds the whole
message but not yet its end: the final "." of DATA is written only after
the commit. So a worker killed at any moment leaves one of two states:

- killed before the commit: the row is still queued and the server throws
  the unfinished message away when the connection drops; the step runs
  again after its claim goes stale and sends the email then;
- killed after the commit: the row says sent, and the "." follows at once,
  so the server has the message; nobody sends it again.

What is left open is the mark's commit itself: once its statement reaches
the database, the database commits it whether or not the worker lives to
read the answer, so a kill from then until the "." reaches the kernel (the
commit's flush and answer, well under a millisecond on a local database)
loses the email, which is marked sent. Sending before marking would
instead duplicate an email on a kill anywhere between the server accepting
it and the mark committing, a network round trip plus a database commit.
Once the "." is written, only an answer of refusal from the server undoes
the mark; a connection lost while waiting for that answer counts as sent,
the same decision the restarted worker makes, and the row keeps the error.

The mark's commit and the SMTP round trips of each email wait on one
another, so CSP_SMTP_CONNECTIONS above 1 sends a batch in groups over that
many connections, one message on each: every connection carries its
message up to the ".", one commit marks the group sent, then the "."s are
written back to back before any answer is read. That multiplies the rate,
and widens the window: a worker killed after the group's commit resets
those of its connections with answers not yet read, and the server drops
what it had not read of them, so up to a group of emails marked sent can
be lost. The default is 1, exactly once but for the one commit above.
"""

import logging
import re
import smtplib
import socket
from email.generator import BytesGenerator
from email.headerregistry import Address
from email.policy import Compat32
from functools import lru_cache
from io import BytesIO

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.mail.message import sanitize_address
from django.db import connection
from django.utils import timezone

from csplatform.sql import parameters

from .models import EmailStatus, OutboundEmail

logger = logging.getLogger(__name__)

# SMTP transparency (RFC 5321 4.5.2): a line starting with "." gets a second one.
LEADING_DOT = re.compile(rb"(?m)^\.")
# Ends the Message-ID of every email the Outbox holds, and of no other.
OUTBOX_MESSAGE_ID_SUFFIX = "@outbox.csplatform>"


class _MessagePolicy(Compat32):
    """The legacy policy of Django's messages, writing a printable ASCII header that fits on one line as it is.

    Compat32 runs every header through its folding machinery, which leaves
    such a header unchanged and, for a typical email (all its headers short
    and ASCII), costs more than the rest of writing the message. The tests
    hold the bytes to Django's own.
    """

    def fold_binary(self, name, value):
        if (
            isinstance(value, str)
            and value.isascii()
            and value.isprintable()
            and len(name) + 2 + len(value) <= self.max_line_length
        ):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


MESSAGE_POLICY = _MessagePolicy()


def message_bytes(mime):
    """The bytes of a message built by Django, as its `as_bytes()` writes them with CRLF line ends."""
    buffer = BytesIO()
    BytesGenerator(buffer, mangle_from_=False, policy=MESSAGE_POLICY).flatten(mime, linesep="\r\n")
    return buffer.getvalue()


class TransientSendError(Exception):
    """The mail server could not take the email now (down, 4xx); try again later."""


class StoreOnlyBackend(BaseEmailBackend):
    """For the embedded demo: nothing leaves the machine.

    The Outbox page reads the playbooks' emails from OutboundEmail. The
    platform's own emails to its users (invitations, password links,
    notifications, digests) are written to the log instead, so whoever runs
    the demo can follow their links.
    """

    def send_messages(self, email_messages):
        for message in email_messages:
            if not message.extra_headers.get("Message-ID", "").endswith(OUTBOX_MESSAGE_ID_SUFFIX):
                logger.info(
                    "Not sent, the embedded demo sends no email. To %s: %s\n%s",
                    ", ".join(message.to), message.subject, message.body,
                )
        return len(email_messages)


def sender(owner):
    """The From to store for an account's email: its owner CSM by name and address.

    Blank without an owner: message_of then puts the platform's sender, as
    configured where the email is sent.
    """
    if owner is None or not owner.email:
        return ""
    named = str(Address(display_name=owner.name, addr_spec=owner.email))
    # A name too long for the stored header gives way to the bare address.
    return named if len(named) <= OutboundEmail._meta.get_field("from_email").max_length else owner.email


def message_of(email, connection=None):
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=email.text,
        from_email=email.from_email or settings.DEFAULT_FROM_EMAIL,
        to=[email.to_email],
        reply_to=[email.reply_to] if email.reply_to else None,
        connection=connection,
        # A stable Message-ID lets receiving systems recognise the same email.
        headers={"Message-ID": f"<{email.idempotency_key.replace(':', '.')}.{email.tenant_id}{OUTBOX_MESSAGE_ID_SUFFIX}"},
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


def _mark_sent(emails, now=None):
    """Commit queued -> sent for these emails of one tenant (sent at `now`, else the current time).

    Returns the ids it marked; a row that left the queued state meanwhile
    (another worker sent it) is not marked, and its message must not end.
    One `UPDATE … RETURNING`, its own transaction outside an atomic block:
    the mark costs the sender one round trip and one commit per group.
    """
    (tenant_id,) = {email.tenant_id for email in emails}
    ids = [email.pk for email in emails]
    table = connection.ops.quote_name(OutboundEmail._meta.db_table)
    sent_at = connection.ops.adapt_datetimefield_value(now or timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET status = %s, sent_at = %s, attempts = attempts + 1, error = '' "
            f"WHERE tenant_id = %s AND status = %s AND id IN {parameters(len(ids))} RETURNING id",
            [EmailStatus.SENT, sent_at, tenant_id, EmailStatus.QUEUED, *ids],
        )
        return {row[0] for row in cursor.fetchall()}


@lru_cache(maxsize=1024)
def _envelope_sender(from_email, encoding):
    # An owner's From is in each of their emails, and parsing a named address costs more than sending.
    return sanitize_address(from_email, encoding)


class _Transaction:
    """One email's SMTP mail transaction up to its final ".", in stages of one write and one read.

    A group's connections move in step: a stage's command goes out on every
    connection before any answer is read, so the server works on all of
    them while the worker waits once. On a connection that offers
    PIPELINING the envelope is one stage, not three. Refusals raise the SMTP
    exceptions smtplib's sendmail raises.
    """

    def __init__(self, slot, email, smtp):
        message = message_of(email)
        encoding = message.encoding or settings.DEFAULT_CHARSET
        self.slot, self.email, self.smtp = slot, email, smtp
        self.pipelined = smtp.has_extn("pipelining")
        self.stages = self.PIPELINED_STAGES if self.pipelined else self.STAGES
        # Set when the envelope went out behind the previous message's "." (Outbox._send_group).
        self.envelope_written = False
        self.sender = _envelope_sender(message.from_email, encoding)
        # A stored recipient is a bare address: as a (name, address) pair it skips the full parse.
        self.recipients = [sanitize_address(("", recipient), encoding) for recipient in message.recipients()]
        data = LEADING_DOT.sub(b"..", message_bytes(message.message()))
        self.data = data if data.endswith(b"\r\n") else data + b"\r\n"

    def write_mail(self):
        self.smtp.putcmd("mail", f"FROM:{smtplib.quoteaddr(self.sender)}")

    def read_mail(self):
        code, reply = self.smtp.getreply()
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, self.sender)

    def write_rcpt(self):
        for recipient in self.recipients:
            self.smtp.putcmd("rcpt", f"TO:{smtplib.quoteaddr(recipient)}")

    def read_rcpt(self):
        refused = {}
        for recipient in self.recipients:
            code, reply = self.smtp.getreply()
            if code not in (250, 251):
                refused[recipient] = (code, reply)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)

    def write_data(self):
        self.smtp.putcmd("data")

    def read_data(self):
        """The DATA answer, then the whole message but its final "."."""
        self._read_data_answer()
        self._send_content()

    def envelope(self):
        """MAIL, RCPT and DATA as one write, for a server that offers PIPELINING (RFC 2920)."""
        commands = [f"MAIL FROM:{smtplib.quoteaddr(self.sender)}"]
        commands += [f"RCPT TO:{smtplib.quoteaddr(recipient)}" for recipient in self.recipients]
        return "".join(f"{command}\r\n" for command in [*commands, "DATA"]).encode("ascii")

    def write_envelope(self):
        if not self.envelope_written:
            self.smtp.send(self.envelope())

    def read_envelope(self):
        """The answers to write_envelope, every one read before a refusal is raised; then the message as read_data."""
        refusals = []
        for read in (self.read_mail, self.read_rcpt):
            try:
                read()
            except (smtplib.SMTPSenderRefused, smtplib.SMTPRecipientsRefused) as exc:
                refusals.append(exc)
        try:
            self._read_data_answer()
        except smtplib.SMTPDataError as exc:
            refusals.append(exc)
        else:
            if refusals:
                # A server that takes DATA after refusing the envelope waits for a message that must not come.
                self.smtp.close()
        if refusals:
            raise refusals[0]
        self._send_content()

    def _read_data_answer(self):
        code, reply = self.smtp.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)

    def _send_content(self):
        # The "." follows the content as a write of its own: without NODELAY it would wait for an ACK.
        self.smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.smtp.send(self.data)

    STAGES = ((write_mail, read_mail), (write_rcpt, read_rcpt), (write_data, read_data))
    # One round trip an email where four were: the envelope goes out with the previous message's ".".
    PIPELINED_STAGES = ((write_envelope, read_envelope),)


def _end_answer(smtp):
    """The server's answer to the "."; the error text when the connection broke meanwhile, else ""."""
    try:
        code, reply = smtp.getreply()
    except smtplib.SMTPServerDisconnected as exc:
        return f"Sent, but the server did not answer the end of the message: {exc}"
    if code != 250:
        raise smtplib.SMTPDataError(code, reply)
    return ""


class Outbox:
    """The mail connections of a batch of emails: Django's configured backend, opened at the first email.

    `with Outbox() as outbox: outbox.send(emails)`; the connections close with
    the block. An SMTP backend gets up to CSP_SMTP_CONNECTIONS connections,
    one per email of a group (see the module docstring).
    """

    def __init__(self):
        self.backends = {}
        self.smtp = None
        # {slot: the _Transaction whose envelope went out behind that connection's last "."}
        self.chained = {}

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.close(polite=exc_type is None)

    def close(self, polite=False):
        """Close every connection: `polite` says QUIT, which only a connection between messages can."""
        for slot in list(self.backends):
            self._close(slot, polite)

    def _close(self, slot, polite=False):
        """Close one connection; without `polite`, drop it, so that its server discards an unfinished message."""
        self.chained.pop(slot, None)
        backend = self.backends.pop(slot, None)
        if backend is None:
            return
        if not polite and isinstance(backend, SMTPBackend) and backend.connection is not None:
            backend.connection.close()
        backend.close()

    def _backend(self, slot):
        if slot not in self.backends:
            backend = get_connection(fail_silently=False)
            backend.open()
            self.backends[slot] = backend
        return self.backends[slot]

    def send(self, emails, now=None):
        """Send queued emails of one tenant, each marked sent as its message ends; returns {email id: outcome}.

        The outcome is True if this call sent the email, False if not (refused
        for good, which marks the row failed, or sent by another worker
        meanwhile), or a TransientSendError when the server could not take
        it now, which leaves the row queued for the next attempt.
        """
        if self.smtp is None:
            self.smtp = isinstance(get_connection(), SMTPBackend)
        outcomes = {}
        if not self.smtp:
            for email in emails:
                outcomes[email.pk] = self._send_plain(email, now)
            return outcomes
        size = max(1, settings.CSP_SMTP_CONNECTIONS)
        for start in range(0, len(emails), size):
            following = emails[start + size : start + 2 * size]
            outcomes.update(self._send_group(emails[start : start + size], following, now))
        return outcomes

    def _send_plain(self, email, now):
        """A backend that does not speak SMTP here (console, in-memory, store only): mark, then hand over."""
        if not _mark_sent([email], now):
            return False
        try:
            self._backend(0).send_messages([message_of(email)])
        except (smtplib.SMTPException, OSError) as exc:
            return self._failed(0, email, exc, marked=True)
        return True

    def _send_group(self, emails, following, now):
        """1. Each email on a connection of its own, up to its "." (the connections in step).
        2. One commit marks the held ones sent; the others end without "." (discarded).
        3. The "."s back to back, each followed by the envelope of the connection's
           email in the `following` group when the server pipelines; then each answer.
        """
        outcomes = {}
        held = self._hold(emails, outcomes)
        try:
            marked = _mark_sent([sending.email for sending in held], now) if held else set()
        except BaseException:
            # The servers hold unfinished messages: closing without the "." makes them discard them.
            self.close()
            raise
        ending = []
        for sending in held:
            if sending.email.pk in marked:
                ending.append(sending)
            else:
                self._close(sending.slot)
                outcomes[sending.email.pk] = False
        written = []
        for sending in ending:
            chained = None
            if sending.pipelined and sending.slot < len(following):
                chained = _Transaction(sending.slot, following[sending.slot], sending.smtp)
            try:
                sending.smtp.send(b".\r\n" + (chained.envelope() if chained else b""))
                written.append(sending)
            except (smtplib.SMTPException, OSError) as exc:
                outcomes[sending.email.pk] = self._failed(sending.slot, sending.email, exc, marked=True)
                continue
            if chained:
                chained.envelope_written = True
                self.chained[sending.slot] = chained
        for sending in written:
            email = sending.email
            try:
                error = _end_answer(sending.smtp)
            except (smtplib.SMTPException, OSError) as exc:
                outcomes[email.pk] = self._failed(sending.slot, email, exc, marked=True)
                continue
            if error:
                OutboundEmail.objects.for_tenant(email.tenant_id).filter(pk=email.pk).update(error=error[:2000])
                self._close(sending.slot)
            outcomes[email.pk] = True
        return outcomes

    def _hold(self, emails, outcomes):
        """Step 1 of _send_group: the transactions whose server holds all but the "."; failures go to `outcomes`."""
        live = []
        for slot, email in enumerate(emails):
            chained = self.chained.pop(slot, None)
            if chained is not None and chained.email is email:
                live.append(chained)
                continue
            try:
                smtp = self._backend(slot).connection
                smtp.ehlo_or_helo_if_needed()
                live.append(_Transaction(slot, email, smtp))
            except (smtplib.SMTPException, OSError) as exc:
                outcomes[email.pk] = self._failed(slot, email, exc, marked=False)
        # Each connection goes through its own stages, the group's in step: stage by stage, write then read.
        for stage in range(len(_Transaction.STAGES)):
            for step in (0, 1):
                for sending in [sending for sending in live if stage < len(sending.stages)]:
                    try:
                        sending.stages[stage][step](sending)
                    except (smtplib.SMTPException, OSError) as exc:
                        live.remove(sending)
                        outcomes[sending.email.pk] = self._failed(
                            sending.slot, sending.email, exc, marked=False
                        )
        return live

    def _failed(self, slot, email, exc, *, marked):
        """Record a refusal or a broken connection before the server took the email; returns its outcome.

        A permanent refusal (5xx) marks the row failed; anything else puts
        it back to queued (it may have been marked sent) for the next attempt.
        """
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
            self._close(slot)
            return TransientSendError(str(exc) or exc.__class__.__name__)
        if not marked:
            # A refused envelope leaves a mail transaction open; a refused "." has ended it.
            self._reset(slot)
        return False

    def _reset(self, slot):
        """After a refused envelope the connection stays usable once the mail transaction is reset."""
        connection = getattr(self.backends.get(slot), "connection", None)
        if connection is None:
            return
        try:
            connection.rset()
        except (smtplib.SMTPException, OSError):
            self._close(slot)

