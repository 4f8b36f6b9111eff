from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from . import export_views, views

router = SimpleRouter()
router.register("audit-log", views.AuditLogViewSet, basename="audit-log")

urlpatterns = router.urls + [
    path("whoami/", views.WhoAmIView.as_view(), name="api-whoami"),
    re_path(r"^export/?$", export_views.TenantExportView.as_view(), name="api-export"),
]
