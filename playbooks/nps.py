"""One-click NPS answers: each link carries a signed, expiring token."""

import datetime as dt

from django.core import signing

SALT = "playbooks.nps"


def nps_token(*, tenant, contact, score, step_run, expires_days):
    payload = {"t": tenant.pk, "c": contact.pk, "s": score, "r": step_run.pk, "e": expires_days}
    return signing.TimestampSigner(salt=SALT).sign_object(payload, compress=True)


def nps_token_read(token):
    """The token's payload; raises signing.BadSignature (or SignatureExpired) when invalid or too old."""
    signer = signing.TimestampSigner(salt=SALT)
    payload = signer.unsign_object(token)
    signer.unsign_object(token, max_age=dt.timedelta(days=payload["e"]))
    return payload
