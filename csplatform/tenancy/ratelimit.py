"""Limits on sign-in attempts and password-reset requests, per client address and per account, kept in the cache.

Failed sign-ins count against both the address they came from and the email
they tried, so neither one address guessing many passwords nor many
addresses guessing one account's password get far. A successful sign-in
clears the account's count. Requests for a password-reset link count the
same way, so nobody can fill a member's inbox with links. While the cache is
unreachable both still work without a limit, as a cache outage must not lock
everyone out.
"""

import hashlib
import logging
from dataclasses import dataclass

import redis
from django.contrib.auth.forms import PasswordResetForm
from django.core.cache import cache
from django.core.exceptions import ValidationError

from .forms import EmailAuthenticationForm
from .models import User

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 15 * 60
CACHE_ERRORS = (redis.exceptions.RedisError, OSError)


@dataclass(frozen=True)
class Limit:
    """How many of one kind of attempt an address and an account may make in the window."""

    key: str
    per_address: int
    per_account: int

    def keys(self, request, email):
        """The (cache key, allowed attempts) pairs one attempt counts against."""
        account = hashlib.sha256((email or "").strip().lower().encode()).hexdigest()
        return [
            (f"{self.key}:address:{client_address(request)}", self.per_address),
            (f"{self.key}:account:{account}", self.per_account),
        ]

    def reached(self, request, email):
        """True when the address or the account has used up its attempts for the window."""
        pairs = self.keys(request, email)
        try:
            counts = cache.get_many([key for key, _ in pairs])
        except CACHE_ERRORS as exc:
            logger.warning("%s limit skipped, the cache is unreachable: %s", self.key, exc)
            return False
        return any(counts.get(key, 0) >= allowed for key, allowed in pairs)

    def count(self, request, email):
        try:
            for key, _ in self.keys(request, email):
                # add() starts the window; incr() counts within it. A count that
                # expired between the two starts a new window.
                if not cache.add(key, 1, timeout=WINDOW_SECONDS):
                    try:
                        cache.incr(key)
                    except ValueError:
                        cache.add(key, 1, timeout=WINDOW_SECONDS)
        except CACHE_ERRORS as exc:
            logger.warning("%s attempt not counted, the cache is unreachable: %s", self.key, exc)

    def clear_account(self, request, email):
        try:
            cache.delete(self.keys(request, email)[1][0])
        except CACHE_ERRORS as exc:
            logger.warning("%s count not cleared, the cache is unreachable: %s", self.key, exc)


SIGN_IN_FAILURES = Limit("signin:failures", per_address=20, per_account=5)
PASSWORD_RESET_REQUESTS = Limit("password-reset:requests", per_address=10, per_account=3)


def client_address(request):
    """The address the request came from, as the web server saw it.

    REMOTE_ADDR only: a client can write any X-Forwarded-For it likes; the
    proxy in front of the app is the one to set REMOTE_ADDR.
    """
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


class RateLimitedAuthenticationForm(EmailAuthenticationForm):
    """The sign-in form, refusing without checking the password once the limit is reached."""

    error_messages = {
        **EmailAuthenticationForm.error_messages,
        "too_many_attempts": "Too many failed sign-in attempts. Wait 15 minutes and try again.",
    }

    def clean(self):
        email = self.cleaned_data.get("username", "")
        if SIGN_IN_FAILURES.reached(self.request, email):
            raise ValidationError(self.error_messages["too_many_attempts"], code="too_many_attempts")
        try:
            cleaned = super().clean()
        except ValidationError:
            SIGN_IN_FAILURES.count(self.request, email)
            raise
        SIGN_IN_FAILURES.clear_account(self.request, email)
        return cleaned


class RateLimitedPasswordResetForm(PasswordResetForm):
    """Ask for a link that sets a new password; counted so that nobody can fill a member's inbox with links."""

    error_messages = {"too_many_requests": "Too many requests for a new password. Wait 15 minutes and try again."}

    def __init__(self, *args, request, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request

    def clean_email(self):
        email = self.cleaned_data["email"].lower()
        if PASSWORD_RESET_REQUESTS.reached(self.request, email):
            raise ValidationError(self.error_messages["too_many_requests"], code="too_many_requests")
        PASSWORD_RESET_REQUESTS.count(self.request, email)
        return email

    def get_users(self, email):
        """The active user of that email, whether or not they have set a password.

        Django leaves out users with no usable password; here they are
        members invited whose link expired before they used it, and the
        same link lets them in.
        """
        return User.objects.filter(email__iexact=email, is_active=True)
