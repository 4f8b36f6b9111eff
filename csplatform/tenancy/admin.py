"""The Django admin, which superusers use across tenants.

Row-level security shows a session without a tenant no tenant rows at all,
so every admin page runs with it bypassed for an active superuser, here in
one place: `admin_view` wraps each page, its template rendering included.
Other staff get no bypass. The site replaces the default one through
PlatformAdminConfig in INSTALLED_APPS, so the apps' `@admin.register`
calls land on it unchanged.
"""

import functools

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig

from .rls import dangerously_bypass_rls


class PlatformAdminSite(admin.AdminSite):
    def admin_view(self, view, cacheable=False):
        protected = super().admin_view(view, cacheable)

        @functools.wraps(protected)
        def across_tenants(request, *args, **kwargs):
            if not (request.user.is_active and request.user.is_superuser):
                return protected(request, *args, **kwargs)
            with dangerously_bypass_rls():
                response = protected(request, *args, **kwargs)
                # A TemplateResponse renders after the view returns; its queries need the bypass too.
                if hasattr(response, "render") and not response.is_rendered:
                    response.render()
            return response

        return across_tenants


class PlatformAdminConfig(AdminConfig):
    default_site = "csplatform.tenancy.admin.PlatformAdminSite"
