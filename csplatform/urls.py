from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from . import api, monitoring, views

notes = SimpleRouter()
notes.register("notes", api.AccountNoteViewSet, basename="note")

api_v1 = [
    path("", include("csplatform.tenancy.api.urls")),
    path("", include("csplatform.customers.api.urls")),
    path("", include("csplatform.customers.api.ingest_urls")),
    path("", include("csplatform.rules.api.urls")),
    path("", include("health.api.urls")),
    path("", include("lifecycle.api.urls")),
    path("", include("playbooks.api.urls")),
    path("", include("alerts.api.urls")),
    path("pipeline/", api.PipelineFreshnessView.as_view(), name="api-pipeline"),
    path("portfolio/", api.PortfolioView.as_view(), name="api-portfolio"),
    path("accounts/<int:account_id>/activity/", api.AccountActivityView.as_view(), name="api-account-activity"),
    *notes.urls,
]

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", monitoring.metrics, name="metrics"),
    path("api/v1/", include(api_v1)),
    path("api/segment/v1/", include("csplatform.customers.api.segment_urls")),
    path("api/schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="api-docs",
    ),
    path("admin/", admin.site.urls),
    path("", include("playbooks.urls")),
    path("", include("csplatform.tenancy.urls")),
    # Tenant pages: every view under these prefixes is wrapped in tenancy.decorators.tenant_page.
    path("t/<slug:tenant_slug>/", include("csplatform.page_urls")),
    path("t/<slug:tenant_slug>/settings/", include("csplatform.settings_urls")),
]
