from rest_framework import authentication, exceptions

from ..rls import dangerously_bypass_rls
from ..services import api_key_authenticate


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>`. The key decides the tenant: `request.auth.tenant`."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() != self.keyword.lower():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <api key>'.")
        return self.authenticate_key(parts[1])

    @staticmethod
    def authenticate_key(raw_key):
        # The key names the tenant, so it is found before any tenant can be set.
        with dangerously_bypass_rls():
            api_key = api_key_authenticate(raw_key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return (None, api_key)

    def authenticate_header(self, request):
        return self.keyword


def acting_user(request):
    """Whom an API request acts for: the key's creator, marked with the key.

    Services take the user as their actor; the mark lets the audit log read
    "alice@… via key CI sync (csp_ab12…)". A key created from the command
    line has no creator; its changes read as the system's.
    """
    api_key = request.auth
    user = api_key.created_by
    if user is not None:
        user.via_api_key = api_key
    return user
