from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("segments", views.SegmentViewSet, basename="segment")
router.register("alert-rules", views.AlertRuleViewSet, basename="alert-rule")
router.register("alerts", views.AlertViewSet, basename="alert")
router.register("webhooks", views.WebhookSubscriptionViewSet, basename="webhook")

urlpatterns = router.urls
