from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("stages", views.StageViewSet, basename="stage")
router.register("transitions", views.StageTransitionViewSet, basename="stage-transition")

urlpatterns = [
    path("stage-templates/", views.StageTemplateListView.as_view(), name="stage-template-list"),
    path("accounts/<int:pk>/move-stage/", views.AccountMoveStageView.as_view(), name="account-move-stage"),
    path("accounts/<int:pk>/renew/", views.AccountRenewView.as_view(), name="account-renew"),
    path("criteria/validate/", views.CriteriaValidateView.as_view(), name="criteria-validate"),
    path("criteria/preview/", views.CriteriaPreviewView.as_view(), name="criteria-preview"),
    path("lifecycle/kpis/", views.LifecycleKpiView.as_view(), name="lifecycle-kpis"),
    *router.urls,
]
