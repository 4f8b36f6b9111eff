import logging

from rest_framework.throttling import SimpleRateThrottle

from ..models import ApiKey
from ..ratelimit import CACHE_ERRORS

logger = logging.getLogger(__name__)


class ApiKeyRateThrottle(SimpleRateThrottle):
    """One request budget per API key, kept in the cache (Redis in production).

    While the cache is unreachable requests go through unthrottled: ingest
    must keep storing events during a Redis outage, and going without the
    rate limit for its length is the lesser harm.
    """

    scope = "api_key"

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiKey):
            return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except CACHE_ERRORS as exc:
            logger.warning("Rate limit skipped, the cache is unreachable: %s", exc)
            return True
