"""Sending the stored OutboundEmail rows.

An email is sent by reading its row; the row moves queued -> sent with a
conditional update, so a step executed again after a crash never sends an
email that is already marked sent.
"""

import smtplib

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

from .models import EmailStatus, OutboundEmail


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


def email_deliver(*, email):
    """Send one queued email and mark it sent; returns True if this call sent it.

    A permanent refusal (5xx) marks the row failed; anything else raises
    TransientSendError and leaves the row queued for the next attempt.
    """
    rows = OutboundEmail.objects.for_tenant(email.tenant_id)
    rows.filter(pk=email.pk, status=EmailStatus.QUEUED).update(attempts=email.attempts + 1)
    try:
        message_of(email, connection=get_connection(fail_silently=False)).send()
    except (smtplib.SMTPException, OSError) as exc:
        if _is_permanent(exc):
            rows.filter(pk=email.pk, status=EmailStatus.QUEUED).update(status=EmailStatus.FAILED, error=str(exc)[:2000])
            return False
        raise TransientSendError(str(exc) or exc.__class__.__name__) from exc
    return bool(
        rows.filter(pk=email.pk, status=EmailStatus.QUEUED).update(
            status=EmailStatus.SENT, sent_at=timezone.now(), error=""
        )
    )
