from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("health/scorecards", views.ScorecardViewSet, basename="scorecard")

urlpatterns = [
    path("accounts/<int:pk>/health/", views.AccountHealthView.as_view(), name="account-health"),
    path("accounts/<int:pk>/health/history/", views.AccountHealthHistoryView.as_view(), name="account-health-history"),
    path("accounts/<int:pk>/health/why/", views.AccountHealthWhyView.as_view(), name="account-health-why"),
    path("accounts/<int:pk>/health/override/", views.AccountHealthOverrideView.as_view(), name="account-health-override"),
    path("health/distribution/", views.HealthDistributionView.as_view(), name="health-distribution"),
    path("health/settings/", views.HealthSettingsView.as_view(), name="health-settings"),
    *router.urls,
]
