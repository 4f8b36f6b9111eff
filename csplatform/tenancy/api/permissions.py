from rest_framework import permissions

from ..models import ApiKey, Scope


class HasApiKeyScope(permissions.BasePermission):
    """An API key with the scope the view asks for.

    A view names its scope with `required_scope`; otherwise reads need `read`
    and writes need `write`.
    """

    message = "This API key does not have the scope this operation needs."

    def has_permission(self, request, view):
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return False
        scope = getattr(view, "required_scope", None)
        if scope is None:
            scope = Scope.READ if request.method in permissions.SAFE_METHODS else Scope.WRITE
        if not api_key.has_scope(scope):
            self.message = f"This API key lacks the '{scope}' scope."
            return False
        return True
