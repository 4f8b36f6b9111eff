"""Sign-in attempt limits, per client address and per account, kept in the cache.

Failed attempts count against both the address they came from and the email
they tried, so neither one address guessing many passwords nor many
addresses guessing one account's password get far. A successful sign-in
clears the account's count. While the cache is unreachable sign-in still
works without a limit, as a cache outage must not lock everyone out.
"""

import hashlib
import logging

import redis
from django.core.cache import cache
from django.core.exceptions import ValidationError

from .forms import EmailAuthenticationForm

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_ADDRESS = 20
MAX_FAILURES_PER_ACCOUNT = 5
CACHE_ERRORS = (redis.exceptions.RedisError, OSError)


def client_address(request):
    """The address the request came from, as the web server saw it.

    REMOTE_ADDR only: a client can write any X-Forwarded-For it likes; the
    proxy in front of the app is the one to set REMOTE_ADDR.
    """
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


def limits(request, email):
    """The (cache key, allowed failures) pairs one sign-in attempt counts against."""
    account = hashlib.sha256((email or "").strip().lower().encode()).hexdigest()
    return [
        (f"signin:failures:address:{client_address(request)}", MAX_FAILURES_PER_ADDRESS),
        (f"signin:failures:account:{account}", MAX_FAILURES_PER_ACCOUNT),
    ]


def signin_blocked(request, email):
    """True when the address or the account has used up its failed attempts for the window."""
    pairs = limits(request, email)
    try:
        counts = cache.get_many([key for key, _ in pairs])
    except CACHE_ERRORS as exc:
        logger.warning("Sign-in limit skipped, the cache is unreachable: %s", exc)
        return False
    return any(counts.get(key, 0) >= allowed for key, allowed in pairs)


def signin_failed(request, email):
    try:
        for key, _ in limits(request, email):
            # add() starts the window; incr() counts within it. A count that
            # expired between the two starts a new window.
            if not cache.add(key, 1, timeout=WINDOW_SECONDS):
                try:
                    cache.incr(key)
                except ValueError:
                    cache.add(key, 1, timeout=WINDOW_SECONDS)
    except CACHE_ERRORS as exc:
        logger.warning("Sign-in failure not counted, the cache is unreachable: %s", exc)


def signin_succeeded(request, email):
    try:
        cache.delete(limits(request, email)[1][0])
    except CACHE_ERRORS as exc:
        logger.warning("Sign-in count not cleared, the cache is unreachable: %s", exc)


class RateLimitedAuthenticationForm(EmailAuthenticationForm):
    """The sign-in form, refusing without checking the password once the limit is reached."""

    error_messages = {
        **EmailAuthenticationForm.error_messages,
        "too_many_attempts": "Too many failed sign-in attempts. Wait 15 minutes and try again.",
    }

    def clean(self):
        email = self.cleaned_data.get("username", "")
        if signin_blocked(self.request, email):
            raise ValidationError(self.error_messages["too_many_attempts"], code="too_many_attempts")
        try:
            cleaned = super().clean()
        except ValidationError:
            signin_failed(self.request, email)
            raise
        signin_succeeded(self.request, email)
        return cleaned
