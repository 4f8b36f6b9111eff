from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from .decorators import user_memberships
from .ratelimit import RateLimitedAuthenticationForm


class LoginView(auth_views.LoginView):
    template_name = "tenancy/login.html"
    authentication_form = RateLimitedAuthenticationForm
    redirect_authenticated_user = True


@login_required
def home(request):
    """Send the user to their tenant, let them pick one, or explain that they have none."""
    memberships = user_memberships(request.user)
    if len(memberships) == 1:
        return redirect("portfolio", tenant_slug=memberships[0].tenant.slug)
    request.memberships = memberships
    template = "tenancy/pick_tenant.html" if memberships else "tenancy/no_tenant.html"
    return render(request, template, {"memberships": memberships})
