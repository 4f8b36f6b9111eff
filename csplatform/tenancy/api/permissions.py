from rest_framework import permissions

from ..models import ApiKey, Scope


class HasApiKeyScope(permissions.BasePermission):
    """An API key with the scope the view asks for.

    A view names its scope with `required_scope`; otherwise reads need `read`
    and writes need `write`.

    The rule behind the scopes is what a request can change, not its HTTP
    method: a POST that only computes an answer from its body and changes
    nothing (criteria validate and preview, segment preview, scorecard
    preview and backtest, playbook simulate) needs `read`, so a read-only
    integration such as a BI tool or an editor plugin can use them without
    a key that could also rewrite the configuration. Such a POST sets
    `required_scope = Scope.READ` (an action passes it to `@action`).
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
