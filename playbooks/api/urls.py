from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("playbooks", views.PlaybookViewSet, basename="playbook")
router.register("playbook-runs", views.RunViewSet, basename="playbook-run")
router.register("tasks", views.TaskViewSet, basename="task")
router.register("emails", views.OutboundEmailViewSet, basename="outbound-email")
router.register("expansion-opportunities", views.ExpansionOpportunityViewSet, basename="expansion-opportunity")

urlpatterns = router.urls
