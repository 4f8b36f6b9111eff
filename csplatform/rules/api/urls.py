from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("metrics", views.MetricDefinitionViewSet, basename="metric")

urlpatterns = router.urls
