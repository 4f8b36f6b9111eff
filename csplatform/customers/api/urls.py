from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("accounts", views.AccountViewSet, basename="account")
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("account-changes", views.AccountChangeViewSet, basename="account-change")
router.register("contact-changes", views.ContactChangeViewSet, basename="contact-change")

urlpatterns = router.urls
