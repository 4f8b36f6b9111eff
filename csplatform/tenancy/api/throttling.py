from rest_framework.throttling import SimpleRateThrottle

from ..models import ApiKey


class ApiKeyRateThrottle(SimpleRateThrottle):
    """One request budget per API key, kept in the cache (Redis in production)."""

    scope = "api_key"

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiKey):
            return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
