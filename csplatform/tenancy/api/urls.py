from django.urls import path, re_path

from . import export_views, views

urlpatterns = [
    path("whoami/", views.WhoAmIView.as_view(), name="api-whoami"),
    re_path(r"^export/?$", export_views.TenantExportView.as_view(), name="api-export"),
]
